//! Real brokers for tests, from Debian's packages: `nats-server -js` and
//! `redis-server`, each on a free loopback port with its data in a
//! temporary directory, killed and removed on drop.
//!
//! The tests that use them are `#[ignore = "needs nats-server and
//! redis-server ..."]`: `scripts/test.sh` installs the packages when they
//! are missing and runs ignored tests too. Asked to run without the
//! binaries, they fail, naming the package.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `nats-server -js`.
    Nats,
    /// `redis-server` with `appendonly yes` and `appendfsync always`.
    Redis,
}

/// A running broker; killed, and its data removed, when dropped.
#[derive(Debug)]
pub struct BrokerServer {
    kind: Kind,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl BrokerServer {
    /// Starts `nats-server` with JetStream.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up.
    pub fn nats() -> Self {
        Self::start(Kind::Nats)
    }

    /// Starts `redis-server`, durable on every write.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up.
    pub fn redis() -> Self {
        Self::start(Kind::Redis)
    }

    fn start(kind: Kind) -> Self {
        let mut server = Self {
            kind,
            dir: TempDir::new(match kind {
                Kind::Nats => "nats",
                Kind::Redis => "redis",
            }),
            port: free_port(),
            child: None,
        };
        server.start_again();
        server
    }

    /// The broker's URL (`nats://127.0.0.1:<port>`, `redis://...`).
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Kills the server at once (`kill -9`), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, on the same port and data.
    ///
    /// # Panics
    /// When it does not come up within 20 s.
    pub fn start_again(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let dir = self.dir.path();
        let (program, package) = match self.kind {
            Kind::Nats => ("nats-server", "nats-server"),
            Kind::Redis => ("redis-server", "redis-server"),
        };
        let mut command = Command::new(program);
        match self.kind {
            Kind::Nats => {
                command
                    .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
                    .arg(dir);
            }
            Kind::Redis => {
                command
                    .args(["--bind", "127.0.0.1", "--port", &port, "--dir"])
                    .arg(dir)
                    .args([
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "always",
                        "--save",
                        "",
                        "--daemonize",
                        "no",
                    ]);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}): scripts/test.sh installs it (apt-get install {package})")
            });
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One message read back from a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The NATS subject, or the Redis stream it was in.
    pub place: String,
    /// The payload (NATS) or the `body` field (Redis), byte for byte.
    pub body: Vec<u8>,
    /// The headers (NATS) or the other fields (Redis).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Forwarded {
    /// The header `name`.
    ///
    /// # Panics
    /// When it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// Every message in JetStream stream `stream`, in order.
///
/// # Panics
/// When the stream cannot be read.
pub async fn read_jetstream(url: &str, stream: &str) -> Vec<Forwarded> {
    let client = async_nats::connect(url).await.expect("a NATS connection");
    let jetstream = async_nats::jetstream::new(client);
    let mut handle = jetstream.get_stream(stream).await.expect("the stream");
    let last = handle
        .info()
        .await
        .expect("the stream's info")
        .state
        .last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        // A sequence can be missing only if deleted; nothing here deletes.
        let message = handle
            .get_raw_message(sequence)
            .await
            .expect("every sequence");
        let headers = message
            .headers
            .iter()
            .map(|(name, values)| {
                let value = values.first().map(|v| v.as_str().to_owned());
                (name.to_string(), value.unwrap_or_default())
            })
            .collect();
        messages.push(Forwarded {
            place: message.subject.to_string(),
            body: message.payload.to_vec(),
            headers,
        });
    }
    messages
}

/// Every entry of the Redis streams `streams`, stream by stream.
///
/// # Panics
/// When Redis cannot be read.
pub async fn read_redis_streams(url: &str, streams: &[&str]) -> Vec<Forwarded> {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    let mut entries = Vec::new();
    for stream in streams {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(*stream)
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await
            .expect("XRANGE");
        for entry in reply.ids {
            let mut body = Vec::new();
            let mut headers = std::collections::BTreeMap::new();
            for (field, value) in entry.map {
                let bytes: Vec<u8> = redis::from_redis_value(value).expect("a bulk string");
                if field == "body" {
                    body = bytes;
                } else {
                    headers.insert(field, String::from_utf8(bytes).expect("UTF-8"));
                }
            }
            entries.push(Forwarded {
                place: (*stream).to_owned(),
                body,
                headers,
            });
        }
    }
    entries
}

/// The Redis keys matching `pattern` (`KEYS`, for tests' small data sets).
///
/// # Panics
/// When Redis cannot be read.
pub async fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .expect("KEYS")
}
