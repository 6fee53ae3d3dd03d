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

impl<T: Send + Sync + 'static, R: Send + 'static> Batcher<T, R> {
    /// Start the batching loop. `f` gets a batch and must answer one result
    /// per item, in order; at most `concurrency` batches run at once.
    ///
    /// A failed batch of several items is retried one item at a time
    /// (unless the store is unavailable, which fails them all alike), so an
    /// item that cannot commit fails only itself, with its own error.
    pub fn spawn<F, Fut>(name: &'static str, max: usize, concurrency: usize, f: F) -> Self
    where
        T: Clone,
        F: Fn(Arc<Vec<T>>) -> Fut + Send + Sync + 'static,
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
                    let items = Arc::new(items);
                    match f(items.clone()).await {
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
                        Err(e) if n > 1 && !matches!(e, Error::Unavailable(_)) => {
                            tracing::warn!(batch = name, size = n, error = %e, "batch failed; committing its items one by one");
                            for (item, reply) in items.iter().zip(replies) {
                                let one =
                                    f(Arc::new(vec![item.clone()])).await.and_then(|mut r| {
                                        r.pop().ok_or_else(|| {
                                            Error::Internal(format!(
                                                "{name}: a batch of 1 answered nothing"
                                            ))
                                        })
                                    });
                                let _ = reply.send(one);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(batch = name, size = n, error = %e, "batch failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::Notify;

    /// A bad item sharing a batch with good ones fails alone, with its own
    /// error; the good ones commit.
    #[tokio::test]
    async fn a_failing_item_fails_only_itself() {
        let gate = Arc::new(Notify::new());
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (g, s) = (gate.clone(), sizes.clone());
        let b = Batcher::spawn("test", 16, 1, move |items: Arc<Vec<&'static str>>| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                s.lock().unwrap().push(items.len());
                if items.contains(&"first") {
                    g.notified().await;
                }
                if items.contains(&"bad") {
                    return Err(Error::InvalidArgument("bad item".into()));
                }
                Ok(items.iter().map(|i| i.len()).collect::<Vec<_>>())
            }
        });
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.submit("first").await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let good = tokio::spawn({
            let b = b.clone();
            async move { b.submit("good").await }
        });
        let bad = tokio::spawn({
            let b = b.clone();
            async move { b.submit("bad").await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 5);
        assert_eq!(good.await.unwrap().unwrap(), 4);
        let e = bad.await.unwrap().unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(ref m) if m == "bad item"),
            "{e:?}"
        );
        // The shared batch was tried once, then each item alone.
        assert_eq!(*sizes.lock().unwrap(), vec![1, 2, 1, 1]);
    }
}
