//! A vault store that behaves like a locked keyring showing an unlock prompt: while
//! locked, every call waits (as the Secret Service does until someone answers the
//! prompt); `unlock` lets them through. Backed by keyring-core's in-memory store.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use keyring_core::api::{CredentialStore, CredentialStoreApi};
use keyring_core::{Entry, Result};

pub struct PromptingStore {
    inner: Arc<CredentialStore>,
    locked: Arc<(Mutex<bool>, Condvar)>,
}

/// The test's hand on the prompt.
#[derive(Clone)]
pub struct Prompt(Arc<(Mutex<bool>, Condvar)>);

impl Prompt {
    pub fn lock(&self) {
        *self.0.0.lock().unwrap() = true;
    }

    pub fn unlock(&self) {
        *self.0.0.lock().unwrap() = false;
        self.0.1.notify_all();
    }
}

impl PromptingStore {
    /// A store (unlocked to begin with) and the prompt that locks and unlocks it.
    pub fn with_prompt() -> (Arc<CredentialStore>, Prompt) {
        let locked = Arc::new((Mutex::new(false), Condvar::new()));
        let store = Self { inner: keyring_core::mock::Store::new().expect("mock store"), locked: Arc::clone(&locked) };
        (Arc::new(store), Prompt(locked))
    }
}

impl CredentialStoreApi for PromptingStore {
    fn vendor(&self) -> String {
        "patchbay-tests prompting store".into()
    }

    fn id(&self) -> String {
        "prompting".into()
    }

    /// Every call begins by building its entry: that is where it waits for the prompt.
    fn build(&self, service: &str, user: &str, modifiers: Option<&HashMap<&str, &str>>) -> Result<Entry> {
        let (locked, unlocked) = &*self.locked;
        let mut guard = locked.lock().unwrap();
        while *guard {
            guard = unlocked.wait(guard).unwrap();
        }
        drop(guard);
        self.inner.build(service, user, modifiers)
    }

    fn search(&self, spec: &HashMap<&str, &str>) -> Result<Vec<Entry>> {
        self.inner.search(spec)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl std::fmt::Debug for PromptingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptingStore")
    }
}
