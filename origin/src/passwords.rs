//! Password hashing off the async runtime, in a bounded pool.
//!
//! argon2id costs ~19 MiB and tens of milliseconds of one core per hash, on purpose. Without a
//! bound, a burst of log-ins (from many addresses, so per-IP limits do not stop it) would queue
//! unbounded blocking work and memory. The pool runs at most `slots` hashes at once and lets at
//! most [`WAITING_PER_SLOT`] more requests per slot wait; past that a request is answered
//! `503 busy` with `Retry-After` at once, costing nothing.
//!
//! Logging in as an unknown user verifies against a real hash of a random password made at
//! start (same parameters), so it costs the same as a real user's failed log-in and timing does
//! not tell which usernames exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::accounts;

/// Why the pool did not hash or verify.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every slot is busy and the waiting places are full: retry in a second.
    #[error("too many log-ins at once: retry in a second")]
    Busy,
    /// The hashing itself failed (a server fault).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Requests that may wait for a slot, per slot, before the pool answers busy.
pub const WAITING_PER_SLOT: usize = 8;

/// The bounded argon2 pool (see the module docs).
#[derive(Debug)]
pub struct PasswordPool {
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    admitted_max: usize,
    dummy_hash: String,
}

/// Releases an admission when its hash finishes (it travels with the blocking work, so a
/// request cancelled mid-hash does not free its place early).
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordPool {
    /// A pool of `slots` concurrent hashes (0: one per core). Hashes one random password to
    /// make the stand-in for unknown users.
    pub fn new(slots: usize) -> Self {
        let slots = if slots == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            slots
        };
        let random = hex::encode(rand::random::<[u8; 16]>());
        let dummy_hash = accounts::hash_password(&random).expect("argon2 hashes any password");
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            admitted: Arc::new(AtomicUsize::new(0)),
            admitted_max: slots * (1 + WAITING_PER_SLOT),
            dummy_hash,
        }
    }

    fn admit(&self) -> Result<Admission, PasswordError> {
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.admitted.clone());
        if before >= self.admitted_max {
            return Err(PasswordError::Busy);
        }
        Ok(admission)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let admission = self.admit()?;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| PasswordError::Failed(error.to_string()))?;
        // The slot is held by the hash itself: if the request goes away, the hash still
        // finishes before its place is free.
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop((permit, admission));
            result
        })
        .await
        .map_err(|error| PasswordError::Failed(error.to_string()))
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || accounts::hash_password(&password))
            .await?
            .map_err(|error| PasswordError::Failed(error.to_string()))
    }

    /// Verifies `password` against `stored`, or, for an unknown user (`None`), against the
    /// stand-in hash, so both cost the same; the unknown user never verifies.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let verified = self
            .run(move || accounts::verify_password(&password, &stored))
            .await?;
        Ok(known && verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_users_never_verify_and_real_ones_do() {
        let pool = PasswordPool::new(1);
        let stored = pool.hash("correct horse".into()).await.unwrap();
        assert!(
            pool.verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("wrong horse".into(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!pool.verify("correct horse".into(), None).await.unwrap());
        // The stand-in is a real argon2id hash with the same parameters as stored ones.
        assert!(
            pool.dummy_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_at_once() {
        let pool = Arc::new(PasswordPool::new(1));
        let admitted: Vec<_> = (0..pool.admitted_max)
            .map(|_| pool.admit().unwrap())
            .collect();
        let refused = pool.admit().map(|_| ()).unwrap_err();
        assert!(matches!(refused, PasswordError::Busy));
        drop(admitted);
        assert!(pool.admit().is_ok());
        assert_eq!(pool.admitted.load(Ordering::Acquire), 0);
    }
}
