//! A throwaway PostgreSQL cluster for tests, from the machine's own
//! binaries (Debian's `postgresql` package): created in a temporary
//! directory, listening only on a unix socket there, removed on drop.
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the
//! `postgres` user and every command runs through `runuser -u postgres`.
//! The tests that need it are `#[ignore = "needs PostgreSQL ..."]`, so a
//! plain `cargo test` reports them as ignored; `scripts/test.sh` (the
//! README's test command, which CI runs) installs the binaries when they
//! are missing and runs them with `--include-ignored`. Asked to run without
//! the binaries, they fail.
//!
//! Shared by the inbox crate's tests and the example receiver's (included
//! with `#[path]`); it uses only the standard library.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running cluster; stopped and deleted when dropped.
pub(crate) struct Pg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Pg {
    /// Starts a cluster.
    ///
    /// # Panics
    /// When the binaries are missing, or the cluster cannot be created or
    /// started.
    pub(crate) fn start() -> Self {
        let bin = binaries().expect(
            "PostgreSQL's binaries (initdb, pg_ctl) are not installed: scripts/test.sh installs them (apt-get install postgresql)",
        );
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ricloud-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        // SAFETY-free check for root: the effective user of this process.
        let as_postgres = is_root();
        let pg = Self {
            bin,
            port: free_port(),
            dir,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.start_server();
        pg
    }

    /// The URL sqlx connects with: the unix socket in the cluster's
    /// directory, database `postgres`.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// A fresh database in the cluster, and its URL.
    pub(crate) fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                path(&self.dir),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        );
        format!(
            "postgres://postgres@localhost/{name}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// Starts the server (again, after [`Pg::stop`]), on the same port.
    pub(crate) fn start_server(&self) {
        let options = format!(
            "-k {} -p {} -c listen_addresses= -c fsync=on -c max_connections=200",
            self.dir.display(),
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.dir.join("data")),
                "-l",
                path(&self.dir.join("server.log")),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub(crate) fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.dir.join("data")),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `bin` directory of Debian's PostgreSQL packages, or where
/// `initdb` is on the `PATH`.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
