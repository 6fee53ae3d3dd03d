//! Group commit: many concurrent callers, one transaction per batch.
//!
//! A commit costs about a millisecond of fsync here whatever it holds, so
//! publishes and completions queue into a [`Batcher`]; a loop takes whatever
//! has queued (up to `max`) and hands it to one store call. While a batch
//! commits the next one fills, so batches grow with load and a lone caller
//! still pays only one commit.

use crate::error::{Error, Result};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Item<T, R> = (T, oneshot::Sender<Result<R>>);

/// Submits items to be processed in batches. Cheap to clone.
pub struct Batcher<T, R> {
    tx: mpsc::Sender<Item<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Start the batching loop. `f` gets a batch and must answer one result
    /// per item, in order; at most `concurrency` batches run at once.
    pub fn spawn<F, Fut>(name: &'static str, max: usize, concurrency: usize, f: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Item<T, R>>(max * concurrency * 4);
        let f = Arc::new(f);
        let permits = Arc::new(Semaphore::new(concurrency));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let f = f.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let n = items.len();
                    match f(items).await {
                        Ok(results) if results.len() == n => {
                            for (reply, r) in replies.into_iter().zip(results) {
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Ok(results) => {
                            let msg =
                                format!("{name}: batch of {n} answered {} results", results.len());
                            tracing::error!(batch = name, "{msg}");
                            for reply in replies {
                                let _ = reply.send(Err(Error::Internal(msg.clone())));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(batch = name, size = n, error = %e, "batch failed");
                            let msg = e.to_string();
                            for reply in replies {
                                let err = match &e {
                                    Error::Unavailable(_) => Error::Unavailable(msg.clone()),
                                    Error::Conflict(_) => Error::Conflict(msg.clone()),
                                    _ => Error::Internal(msg.clone()),
                                };
                                let _ = reply.send(Err(err));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    /// Queue one item and wait for its result.
    pub async fn submit(&self, item: T) -> Result<R> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((item, reply))
            .await
            .map_err(|_| Error::Unavailable("engine is shutting down".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("engine is shutting down".into()))?
    }
}
