//! A vault store that behaves like a locked keyring showing an unlock prompt: while
//! locked, every call waits (as the Secret Service does until someone answers the
//! prompt); `unlock` lets them through. Backed by keyring-core's in-memory store.
//! For the real binary, [`SilentBus`]: a session bus that never answers.

use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use keyring_core::api::{CredentialStore, CredentialStoreApi};
use keyring_core::{Entry, Result};

pub struct PromptingStore {
    inner: Arc<CredentialStore>,
    locked: Arc<(Mutex<bool>, Condvar)>,
    waiting: Arc<AtomicUsize>,
}

/// The test's hand on the prompt.
#[derive(Clone)]
pub struct Prompt(Arc<(Mutex<bool>, Condvar)>, Arc<AtomicUsize>);

impl Prompt {
    /// How many calls wait on the prompt now: lets a test order other work between them.
    pub fn waiting(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }

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
        let (locked, waiting) = (Arc::new((Mutex::new(false), Condvar::new())), Arc::new(AtomicUsize::new(0)));
        let store = Self {
            inner: keyring_core::mock::Store::new().expect("mock store"),
            locked: Arc::clone(&locked),
            waiting: Arc::clone(&waiting),
        };
        (Arc::new(store), Prompt(locked, waiting))
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
        if *guard {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            while *guard {
                guard = unlocked.wait(guard).unwrap();
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
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

/// A D-Bus session bus that takes connections and never answers, as a keyring waiting on
/// an unlock prompt nobody sees looks to its client: give the real binary its `address`
/// as `DBUS_SESSION_BUS_ADDRESS`. Its connections stay open until the test process ends.
pub struct SilentBus {
    pub address: String,
    _dir: tempfile::TempDir,
}

impl SilentBus {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a folder for the bus socket");
        let path = dir.path().join("bus");
        let listener = UnixListener::bind(&path).expect("bind the bus socket");
        std::thread::spawn(move || {
            // Held open and never read: the client waits for an answer that never comes.
            let mut held = Vec::new();
            for connection in listener.incoming() {
                held.push(connection);
            }
        });
        Self { address: format!("unix:path={}", path.display()), _dir: dir }
    }
}
