//! One batch of the writer's operations as SQL, in one transaction: the
//! statements, written once for both engines (the [`Engine`] trait,
//! implemented for SQLite and PostgreSQL by one macro), with multi-row
//! statements built by sqlx's `QueryBuilder`.

use super::*;

pub(super) async fn run_batch<DB: Engine>(
    pool: &sqlx::Pool<DB>,
    works: &[Work],
) -> Result<Vec<Answer>, sqlx::Error> {
    DB::run_batch(pool, works).await
}

/// The statements of a batch, on one engine.
pub(super) trait Engine: sqlx::Database {
    fn run_batch<'a>(
        pool: &'a sqlx::Pool<Self>,
        works: &'a [Work],
    ) -> impl std::future::Future<Output = Result<Vec<Answer>, sqlx::Error>> + Send + 'a;
}

/// The same statements for each engine: the SQL reads the same on both.
macro_rules! impl_engine {
    ($db:ty) => {
        impl Engine for $db {
            fn run_batch<'a>(
                pool: &'a sqlx::Pool<Self>,
                works: &'a [Work],
            ) -> impl std::future::Future<Output = Result<Vec<Answer>, sqlx::Error>> + Send + 'a
            {
                async move {
                    let mut tx = pool.begin().await?;
                    let mut answers: Vec<Option<Answer>> = works.iter().map(|_| None).collect();
                    enqueue_all(&mut tx, works, &mut answers).await?;
                    settle_done_all(&mut tx, works, &mut answers).await?;
                    for (work, answer) in works.iter().zip(answers.iter_mut()) {
                        if answer.is_none() {
                            *answer = Some(apply(&mut tx, work).await?);
                        }
                    }
                    tx.commit().await?;
                    answers
                        .into_iter()
                        .map(|a| a.ok_or_else(|| sqlx::Error::Protocol("an operation without an answer".into())))
                        .collect()
                }
            }
        }

        impl_engine!(@ops $db);
    };
    (@ops $db:ty) => {
        /// Enqueues: one multi-row insert per chunk; the ids it returns
        /// are the new ones, the rest were there already (a redelivery, or
        /// the same event twice in this batch: the first one counts).
        #[allow(dead_code, reason = "one copy per engine")]
        async fn enqueue_all(
            tx: &mut sqlx::Transaction<'_, $db>,
            works: &[Work],
            answers: &mut [Option<Answer>],
        ) -> Result<(), sqlx::Error> {
            let rows: Vec<(usize, &NewRow)> = works
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w {
                    Work::Enqueue(row) => Some((i, row)),
                    _ => None,
                })
                .collect();
            let mut any_new = false;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO ricloud_inbox (event_id, slug, body, config, matched_secret, signature, state, attempts, run_at, received_at, updated_at) ",
                );
                query.push_values(chunk, |mut b, (_, row)| {
                    b.push_bind(row.event_id.as_str())
                        .push_bind(row.slug.as_str())
                        .push_bind(row.body.as_ref())
                        .push_bind(row.config.as_deref())
                        .push_bind(row.matched_secret)
                        .push_bind(row.signature.as_deref())
                        .push("'pending'")
                        .push("0")
                        .push(now_ms!())
                        .push_bind(row.received_ms)
                        .push(now_ms!());
                });
                query.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let mut new_ids = HashSet::new();
                for r in query.build().fetch_all(&mut **tx).await? {
                    new_ids.insert(r.try_get::<String, _>(0)?);
                }
                any_new |= !new_ids.is_empty();
                for (i, row) in chunk {
                    answers[*i] = Some(Answer::Enqueued(new_ids.remove(&row.event_id)));
                }
            }
            if any_new && <$db as sqlx::Database>::NAME == "PostgreSQL" {
                // Wakes the workers of every replica, at commit.
                sqlx::query("SELECT pg_notify('ricloud_inbox', '')")
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Rows done: one update per chunk, each row fenced on its lease;
        /// the ids it returns are the ones whose lease still held.
        #[allow(dead_code, reason = "one copy per engine")]
        async fn settle_done_all(
            tx: &mut sqlx::Transaction<'_, $db>,
            works: &[Work],
            answers: &mut [Option<Answer>],
        ) -> Result<(), sqlx::Error> {
            let leases: Vec<(usize, &Lease)> = works
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w {
                    Work::Settle { lease, outcome: Settle::Done } => Some((i, lease)),
                    _ => None,
                })
                .collect();
            for chunk in leases.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "UPDATE ricloud_inbox SET state = 'done', done_at = ", now_ms!(), ", updated_at = ", now_ms!(),
                    ", lease_owner = NULL, lease_expires = NULL, last_error = NULL, lease_token = CASE"
                ));
                // Each row written with the token of the take settling it
                // (the same as the row's, since the update is fenced on
                // it): what an audit of the table can check.
                for (_, lease) in chunk {
                    query
                        .push(" WHEN event_id = ")
                        .push_bind(lease.event_id.as_str())
                        .push(" THEN ")
                        .push_bind(lease.token);
                }
                query.push(" ELSE lease_token END WHERE state = 'running' AND (");
                fenced(&mut query, chunk.iter().map(|(_, lease)| *lease));
                query.push(") RETURNING event_id");
                let mut settled = HashSet::new();
                for r in query.build().fetch_all(&mut **tx).await? {
                    settled.insert(r.try_get::<String, _>(0)?);
                }
                for (i, lease) in chunk {
                    answers[*i] = Some(Answer::Settled(settled.contains(&lease.event_id)));
                }
            }
            Ok(())
        }

        /// `(event_id = .. AND lease_token = ..) OR ...` for `leases`.
        #[allow(dead_code, reason = "one copy per engine")]
        fn fenced<'a>(query: &mut sqlx::QueryBuilder<$db>, leases: impl Iterator<Item = &'a Lease>) {
            let mut or = query.separated(" OR ");
            for lease in leases {
                or.push("(event_id = ")
                    .push_bind_unseparated(lease.event_id.as_str())
                    .push_unseparated(" AND lease_token = ")
                    .push_bind_unseparated(lease.token)
                    .push_unseparated(")");
            }
        }

        /// Runs one operation other than an enqueue or a done in the
        /// batch's transaction.
        #[allow(dead_code, reason = "one copy per engine")]
        #[allow(clippy::too_many_lines, reason = "one arm per operation, each a statement")]
        async fn apply(tx: &mut sqlx::Transaction<'_, $db>, work: &Work) -> Result<Answer, sqlx::Error> {
            Ok(match work {
                // Answered by the multi-row insert before `apply` runs;
                // should one ever get here, it fails (a 503), never
                // "already queued" for a row not written.
                Work::Enqueue(_) => {
                    return Err(sqlx::Error::Protocol(
                        "an enqueue outside the multi-row insert".into(),
                    ))
                }
                Work::Claim { row, owner, lease_ms } => {
                    let claimed = sqlx::query(concat!(
                        "INSERT INTO ricloud_inbox (event_id, slug, body, config, matched_secret, signature, state, attempts, lease_token, run_at, lease_owner, lease_expires, received_at, updated_at) \
                         VALUES ($1, $2, $3, $7, $8, $9, 'running', 1, 1, ", now_ms!(), ", $5, ", now_ms!(), " + $6, $4, ", now_ms!(), ") \
                         ON CONFLICT (event_id) DO UPDATE SET state = 'running', attempts = ricloud_inbox.attempts + 1, \
                         lease_token = ricloud_inbox.lease_token + 1, \
                         lease_owner = excluded.lease_owner, lease_expires = excluded.lease_expires, updated_at = excluded.updated_at \
                         WHERE ricloud_inbox.state = 'pending' OR (ricloud_inbox.state = 'running' AND ricloud_inbox.lease_expires < excluded.updated_at) \
                         RETURNING event_id"
                    ))
                    .bind(row.event_id.as_str())
                    .bind(row.slug.as_str())
                    .bind(row.body.as_ref())
                    .bind(row.received_ms)
                    .bind(owner.as_str())
                    .bind(*lease_ms)
                    .bind(row.config.as_deref())
                    .bind(row.matched_secret)
                    .bind(row.signature.as_deref())
                    .fetch_optional(&mut **tx)
                    .await?;
                    Answer::Claim(if claimed.is_some() {
                        InlineClaim::Claimed
                    } else {
                        let state = sqlx::query("SELECT state FROM ricloud_inbox WHERE event_id = $1")
                            .bind(row.event_id.as_str())
                            .fetch_optional(&mut **tx)
                            .await?;
                        match state.map(|r| r.try_get::<String, _>(0)).transpose()?.as_deref() {
                            Some("done" | "dead") => InlineClaim::Handled,
                            _ => InlineClaim::Busy,
                        }
                    })
                }
                Work::Finish { event_id, owner, handled } => {
                    let sql = if *handled {
                        concat!(
                            "UPDATE ricloud_inbox SET state = 'done', done_at = ", now_ms!(), ", updated_at = ", now_ms!(),
                            ", lease_owner = NULL, lease_expires = NULL, last_error = NULL \
                             WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'"
                        )
                    } else {
                        "DELETE FROM ricloud_inbox WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'"
                    };
                    let done = sqlx::query(sql)
                        .bind(event_id.as_str())
                        .bind(owner.as_str())
                        .execute(&mut **tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tracing::warn!(
                            event_id = %event_id.escape_debug(),
                            "the claim's lease ran out before the handlers finished; another delivery may run them again"
                        );
                    }
                    Answer::Done
                }
                Work::Take { owner, limit, lease_ms, postgres } => {
                    // Rows whose lease ran out (a worker that died) first,
                    // then due pending rows, oldest first: each one
                    // statement that the index on (state, run_at) serves.
                    // PostgreSQL: rows another replica is taking are
                    // skipped, not waited for; SQLite has one writer, this
                    // task. Every take raises the row's lease token.
                    macro_rules! take_sql {
                        ($which:literal, $lock:literal) => {
                            concat!(
                                "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_token = lease_token + 1, \
                                 lease_owner = $1, lease_expires = ", now_ms!(), " + $2, updated_at = ", now_ms!(),
                                " WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE ", $which, " LIMIT $3", $lock, ") \
                                 RETURNING event_id, body, attempts, lease_token, config, signature, received_at"
                            )
                        };
                    }
                    let statements = if *postgres {
                        [
                            take_sql!("state = 'running' AND lease_expires < (SELECT now_ms FROM ricloud_inbox_clock)", " FOR UPDATE SKIP LOCKED"),
                            take_sql!("state = 'pending' AND run_at <= (SELECT now_ms FROM ricloud_inbox_clock) ORDER BY run_at", " FOR UPDATE SKIP LOCKED"),
                        ]
                    } else {
                        [
                            take_sql!("state = 'running' AND lease_expires < (SELECT now_ms FROM ricloud_inbox_clock)", ""),
                            take_sql!("state = 'pending' AND run_at <= (SELECT now_ms FROM ricloud_inbox_clock) ORDER BY run_at", ""),
                        ]
                    };
                    let mut taken = Vec::new();
                    for sql in statements {
                        let room = limit - i64::try_from(taken.len()).unwrap_or(*limit);
                        if room <= 0 {
                            break;
                        }
                        let rows = sqlx::query(sql)
                            .bind(owner.as_str())
                            .bind(*lease_ms)
                            .bind(room)
                            .fetch_all(&mut **tx)
                            .await?;
                        for r in &rows {
                            taken.push(Taken {
                                lease: Lease {
                                    event_id: r.try_get(0)?,
                                    token: r.try_get(3)?,
                                },
                                body: r.try_get(1)?,
                                attempts: i64::from(r.try_get::<i32, _>(2)?),
                                config: r.try_get(4)?,
                                signature: r.try_get(5)?,
                                received_ms: r.try_get(6)?,
                            });
                        }
                    }
                    Answer::Taken(taken)
                }
                Work::Settle { lease, outcome } => {
                    let (state, delay_ms, error) = match outcome {
                        Settle::Done => ("done", 0, None),
                        Settle::Retry { delay_ms, error } => ("pending", *delay_ms, Some(error.as_str())),
                        Settle::Dead { error } => ("dead", 0, Some(error.as_str())),
                    };
                    // Fenced on the lease token: a run whose lease ran out
                    // (and was taken again, by any worker) changes nothing.
                    // A success clears the error of an earlier attempt.
                    let settled = sqlx::query(concat!(
                        "UPDATE ricloud_inbox SET state = $3, \
                         run_at = CASE WHEN $3 = 'pending' THEN ", now_ms!(), " + $4 ELSE run_at END, \
                         done_at = CASE WHEN $3 = 'done' THEN ", now_ms!(), " ELSE done_at END, \
                         last_error = $5, updated_at = ", now_ms!(), ", lease_owner = NULL, lease_expires = NULL, lease_token = $2 \
                         WHERE event_id = $1 AND lease_token = $2 AND state = 'running'"
                    ))
                    .bind(lease.event_id.as_str())
                    .bind(lease.token)
                    .bind(state)
                    .bind(delay_ms)
                    .bind(error)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                        == 1;
                    Answer::Settled(settled)
                }
                Work::Renew { leases, lease_ms, postgres } => {
                    // PostgreSQL: a row locked elsewhere (a transactional
                    // handler marking it done) is skipped, never waited for.
                    for chunk in leases.chunks(ROWS_PER_STATEMENT) {
                        let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                            "UPDATE ricloud_inbox SET lease_expires = ", now_ms!(), " + "
                        ));
                        query.push_bind(*lease_ms);
                        query.push(" WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'running' AND (");
                        fenced(&mut query, chunk.iter());
                        query.push(if *postgres { ") FOR UPDATE SKIP LOCKED)" } else { "))" });
                        query.build().execute(&mut **tx).await?;
                    }
                    Answer::Done
                }
            })
        }
    };
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    impl_engine!(sqlx::Sqlite);
}
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    impl_engine!(sqlx::Postgres);
}
