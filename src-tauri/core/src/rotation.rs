//! Auth Token rotation: secondary token → validate → promote → wait for propagation →
//! replace every copy Patchbay holds → re-validate the dependents. Each step is recorded
//! before the next, so a crash anywhere is finished by `resume_rotations`, which asks
//! Twilio which token is primary now. The old token is only dropped once the new one
//! works, so Patchbay is never left without a working token it could have kept.
//!
//! One run at a time runs a rotation's steps (its claim on the row, taken under the
//! write lock); another process that wants to run or cancel it waits for that run and
//! reports how it ended, and takes the claim over when the claimant's process is gone.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::assets::AssetHome;
use crate::catalog::Feature;
use crate::connections::{self, Connection};
use crate::connectors::TwilioAccount;
use crate::credential_stores::CredentialStoreError;
use crate::error::{Error, Result};
use crate::folders;
use crate::owner;
use crate::secret::Secret;
use crate::store::{Store, text_column_enum};
use crate::twilio::{Credentials, TwilioError};
use crate::vault::VaultKey;
use crate::{Patchbay, assets};

/// The KV v2 version of each rotation target kept in a credential store, by vault user.
type StoreVersions = std::collections::BTreeMap<String, u64>;

/// What to rotate: the token in a credential asset, or a connection's own token.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum RotationSubject {
    /// `write_linked`: also when the asset is linked to a secret in a credential store,
    /// which is then written (with check-and-set); without it such an asset is refused.
    Asset {
        folder: String,
        name: String,
        #[serde(default)]
        write_linked: bool,
    },
    Connection {
        id: String,
    },
}

/// What a rotation will touch, shown before anything changes.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct RotationPlan {
    pub account_sid: String,
    pub subject: String,
    /// Every connection that uses this token (through the asset or its own copy).
    pub dependents: Vec<Dependent>,
    /// How many places in the vault hold the token.
    #[ts(type = "number")]
    pub copies: usize,
    pub warning: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Dependent {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct RotationRecord {
    pub id: String,
    pub account_sid: String,
    pub subject: String,
    pub step: RotationStep,
    pub outcome: Option<String>,
    pub revalidated: Vec<Dependent>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

text_column_enum! {
    /// The step a rotation has reached, recorded before the next one starts.
    #[derive(TS)]
    #[ts(export)]
    pub enum RotationStep {
        Started = "started",
        SecondaryStored = "secondary_stored",
        Validated = "validated",
        Promoted = "promoted",
        Propagated = "propagated",
        Stored = "stored",
        Done = "done",
        Cancelled = "cancelled",
    }
}

impl RotationStep {
    /// Whether Twilio still has the old token as primary, so the rotation can be cancelled.
    fn before_promotion(self) -> bool {
        matches!(self, Self::Started | Self::SecondaryStored | Self::Validated)
    }
}

/// How often a process waiting for another's run of a rotation looks again.
const CLAIM_POLL: Duration = Duration::from_millis(200);

/// This run's claim on a rotation: released when the run ends, however it ends (an
/// error, a dropped future), so that another run may take it.
struct Claim<'a> {
    store: &'a Store,
    rotation: String,
    claim: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.store.write(|tx| rows::release(tx, &self.rotation, &self.claim)) {
            tracing::warn!(code = err.code(), "a rotation's claim is left until this process ends: {err}");
        }
    }
}

/// Whose turn it is to run a rotation's steps.
enum Turn<'a> {
    Mine(Claim<'a>),
    /// Another run finished or cancelled it: the record as it ended.
    Ended(RotationRecord),
}

/// What one look at a rotation's claim found.
enum Attempt {
    Claimed,
    Held,
    Ended,
}

/// What a run that finds its rotation cancelled by another process reports.
fn cancelled_elsewhere(record: &RotationRecord) -> Error {
    Error::Cancelled(format!(
        "the rotation of {} was cancelled by another process: {}",
        record.subject,
        record.outcome.as_deref().unwrap_or("cancelled")
    ))
}

/// The crash switch's points, in order: each one is right after the work that leads to
/// the step of the same number (1 is Twilio's new secondary, not yet in the vault).
const STOP_POINTS: [&str; 7] =
    ["secondary_created", "secondary_stored", "validated", "promoted", "propagated", "stored", "done"];

impl Patchbay {
    /// The tests' crash switch (`Config::rotation_stop_after`, only in builds with the
    /// `test-hooks` feature): aborts the process right after step N (1–7).
    fn stop_after(&self, step: usize) {
        #[cfg(feature = "test-hooks")]
        if self.config.rotation_stop_after == Some(step) {
            eprintln!("rotation_stop_after={step}: stopping after step {step} ({})", STOP_POINTS[step - 1]);
            std::process::abort();
        }
        let _ = (step, STOP_POINTS);
    }
}

fn status_label(connection: &Connection) -> String {
    match &connection.status {
        connections::ConnectionStatus::Connected => "connected".into(),
        connections::ConnectionStatus::Failed { code, .. } => format!("failed: {code}"),
        connections::ConnectionStatus::NotChecked => "not checked".into(),
    }
}

impl Patchbay {
    /// The plan of rotating `subject`'s token: the account, the connections that depend
    /// on the token and every copy of it Patchbay holds. Changes nothing.
    pub async fn plan_rotation(&self, subject: &RotationSubject) -> Result<RotationPlan> {
        let (plan, _, _) = self.rotation_targets(subject).await?;
        Ok(plan)
    }

    /// The plan, the vault users holding the token, and the KV v2 version of each one
    /// kept in a credential store (what the new token is written over, with check-and-set).
    async fn rotation_targets(&self, subject: &RotationSubject) -> Result<(RotationPlan, Vec<String>, StoreVersions)> {
        let write_linked = matches!(subject, RotationSubject::Asset { write_linked: true, .. });
        let (account_sid, key, label, connector) = {
            let conn = self.store.conn();
            match subject {
                RotationSubject::Connection { id } => {
                    let stored = connections::load(&conn, id)?;
                    if !stored.method()?.offers(Feature::TokenRotation) {
                        return Err(Error::invalid(
                            "connection",
                            format!("connection '{}' has no Auth Token that Patchbay can rotate", stored.name),
                        ));
                    }
                    let account = TwilioAccount::of(&stored.fields);
                    if account.test_credentials {
                        return Err(test_credentials_refused());
                    }
                    let label = format!("connection '{}'", stored.name);
                    (account.sid.to_owned(), stored.secret_key()?, label, stored.connector)
                }
                RotationSubject::Asset { folder, name, .. } => {
                    let folder_id = folders::resolve(&conn, folder)?;
                    let asset_id = assets::find_in_folder(&conn, folder_id, name)?
                        .ok_or_else(|| Error::AssetNotFound { name: name.clone(), folder: folder.clone() })?;
                    let mut accounts: Vec<(String, bool)> = Vec::new();
                    let mut connector = String::new();
                    for user in connections::using_asset(&conn, &asset_id)? {
                        if !user.method()?.offers(Feature::TokenRotation) {
                            continue;
                        }
                        connector.clone_from(&user.connector);
                        let account = TwilioAccount::of(&user.fields);
                        let account = (account.sid.to_owned(), account.test_credentials);
                        if !accounts.contains(&account) {
                            accounts.push(account);
                        }
                    }
                    let account_sid = match accounts.as_slice() {
                        [] => {
                            return Err(Error::invalid(
                                "asset",
                                format!(
                                    "no connection uses credential asset '{name}' as a Twilio Auth Token, so Patchbay cannot tell which Twilio account it belongs to"
                                ),
                            ));
                        }
                        [(_, true)] => return Err(test_credentials_refused()),
                        [(sid, false)] => sid.clone(),
                        _ => {
                            return Err(Error::invalid(
                                "asset",
                                format!(
                                    "credential asset '{name}' is used with several Twilio accounts; rotate each connection's token instead"
                                ),
                            ));
                        }
                    };
                    let label = format!("credential asset '{folder}/{name}'");
                    (account_sid, VaultKey::Asset(asset_id), label, connector)
                }
            }
        };
        self.refuse_linked_unless(&key, write_linked)?;
        if let VaultKey::Asset(asset_id) = &key {
            // The token is sent to the service to rotate it: only where the asset may go.
            let destination = assets::Destination::of(&connector, &Default::default());
            assets::sending(&self.store.conn(), asset_id, &destination, self.config.reach, false)?;
        }
        let (token, _) = self.read_secret(&key).await?;

        // Every live connection of the account whose token (own or through an asset) is
        // this one: all of them get the new token.
        let candidates = TwilioAccount::live_auth_token_connections(&self.store.conn(), &account_sid)?;
        let mut targets = Vec::new();
        let mut versions = StoreVersions::new();
        let mut holders = Vec::new();
        for stored in candidates {
            let Ok(key) = stored.secret_key() else { continue };
            let Ok((value, version)) = self.read_secret(&key).await else { continue };
            if crate::instances::secrets_equal(&value, &token) {
                self.refuse_linked_unless(&key, write_linked)?;
                if !targets.contains(&key.user()) {
                    targets.push(key.user());
                    if let Some(version) = version {
                        versions.insert(key.user(), version);
                    }
                }
                holders.push(stored);
            }
        }
        // The rows are already loaded: turn them into views in one pass.
        let dependents = connections::views(&self.store.conn(), holders)?
            .iter()
            .map(|view| Dependent {
                id: view.id.clone(),
                name: view.name.clone(),
                folder: view.folder.clone(),
                status: status_label(view),
            })
            .collect();
        let plan = RotationPlan {
            account_sid,
            subject: label,
            copies: targets.len(),
            dependents,
            warning: "Anything outside Patchbay that still holds the old Auth Token (scripts, Functions, other tools) gets 401/403 from Twilio once the new token is promoted. Twilio keeps one secondary Auth Token and cannot tell whether one exists: if someone made one (a rotation by hand in progress), this rotation revokes it first, and says so.".into(),
        };
        Ok((plan, targets, versions))
    }

    /// A linked asset's secret is its admins' to rotate: refused unless they asked.
    fn refuse_linked_unless(&self, key: &VaultKey, write_linked: bool) -> Result<()> {
        let VaultKey::Asset(id) = key else { return Ok(()) };
        let conn = self.store.conn();
        if let AssetHome::Store { path, managed: false, .. } = assets::home_of(&conn, id)?
            && !write_linked
        {
            let name = assets::describe(&conn, id)?.map(|(name, _)| name).unwrap_or_default();
            return Err(Error::invalid(
                "asset",
                format!(
                    "credential asset '{name}' is linked to '{path}' in a credential store, which is its admins' to rotate; rotate it there (connections read the new value the next time they are used), or pass --write-linked to have Patchbay write the new token there"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses (before anything is promoted) when a target kept in a credential store
    /// has a newer version than the one the rotation read: someone else wrote it.
    async fn ensure_store_versions(&self, versions: &StoreVersions) -> Result<()> {
        for (user, &expected) in versions {
            let Some(key) = VaultKey::from_user(user) else { continue };
            if let AssetHome::Store { store_id, path, .. } = self.home_of(&key)? {
                let current = self.read_store_secret(&store_id, &path, None).await?;
                if current.version != expected {
                    return Err(
                        CredentialStoreError::VersionConflict { path: current.path().to_owned(), expected }.into()
                    );
                }
            }
        }
        Ok(())
    }

    /// Writes the new token over the version the rotation read; a conflict with a
    /// version that already holds the new token is this rotation's own earlier write.
    async fn store_new_token(&self, target: &VaultKey, new: &Secret, version: Option<u64>) -> Result<()> {
        match self.put_secret(target, new, version.unwrap_or(0)).await {
            Err(Error::CredentialStore(CredentialStoreError::VersionConflict { .. }))
                if self.read_secret(target).await.is_ok_and(|(held, _)| held == *new) =>
            {
                Ok(())
            }
            written => written,
        }
    }

    /// Rotates the token: records the rotation, then runs its steps.
    pub async fn rotate(&self, subject: &RotationSubject) -> Result<RotationRecord> {
        let id = self.start_rotation(subject).await?;
        self.run_rotation(&id).await
    }

    /// Records a rotation of `subject`'s token without running any step yet, so that a
    /// caller that may be interrupted (Ctrl-C) knows its id. Returns that id.
    pub async fn start_rotation(&self, subject: &RotationSubject) -> Result<String> {
        let (plan, targets, versions) = self.rotation_targets(subject).await?;
        let dependents: Vec<&str> = plan.dependents.iter().map(|d| d.id.as_str()).collect();
        let id = Uuid::new_v4().to_string();
        rows::insert(&self.store.conn(), &id, &plan, &targets, &dependents, &versions)?;
        Ok(id)
    }

    /// Finishes every unfinished rotation (after a crash), from the step it reached.
    pub async fn resume_rotations(&self) -> Result<Vec<RotationRecord>> {
        let open = rows::unfinished(&self.store.conn())?;
        let mut finished = Vec::new();
        for id in open {
            finished.push(self.run_rotation(&id).await?);
        }
        Ok(finished)
    }

    /// Cancels unfinished rotations that have not promoted yet: Twilio's secondary token
    /// is deleted and nothing else changed.
    pub async fn cancel_rotations(&self) -> Result<Vec<RotationRecord>> {
        let open = rows::unfinished(&self.store.conn())?;
        let mut cancelled = Vec::new();
        for id in open {
            cancelled.push(self.cancel_rotation(&id).await?);
        }
        Ok(cancelled)
    }

    /// Cancels one rotation that has not promoted yet: Twilio's secondary token is
    /// deleted and nothing else changed. After promotion it refuses (`rotation_promoted`):
    /// the new token is live at Twilio, and only finishing the rotation keeps it working.
    /// While another process runs it, that run is asked to cancel and waited for: a run
    /// that completes it makes this `rotation_completed`, with its record.
    pub async fn cancel_rotation(&self, id: &str) -> Result<RotationRecord> {
        match self.turn(id, true).await? {
            Turn::Mine(_claim) => self.cancel_claimed(id).await,
            Turn::Ended(record) if record.step == RotationStep::Done => Err(Error::RotationCompleted(Box::new(record))),
            Turn::Ended(cancelled) => Ok(cancelled),
        }
    }

    /// Cancels a rotation this run holds the claim of (see `cancel_rotation`).
    async fn cancel_claimed(&self, id: &str) -> Result<RotationRecord> {
        // Whoever asked is answered by this attempt, whatever comes of it.
        rows::set_cancel_asked_by(&self.store.conn(), id, None)?;
        let step = self.rotation(id)?.step;
        let (account_sid, targets) = self.rotation_account(id)?;
        let old = self.old_token(id, &targets).await?;
        let credentials = Credentials::auth_token(&account_sid, &old);
        let promoted = !step.before_promotion() || !self.token_works(credentials).await?;
        if promoted {
            return Err(Error::RotationPromoted);
        }
        self.services.twilio.delete_secondary_auth_token(credentials).await.map_err(twilio)?;
        self.vault.delete(&VaultKey::RotationPending(id.to_owned())).await?;
        self.store.write(|tx| {
            rows::finish(
                tx,
                id,
                RotationStep::Cancelled,
                "cancelled before promotion; the secondary token was deleted and nothing changed",
                &[],
            )
        })?;
        self.rotation(id)
    }

    /// Every rotation, newest first.
    pub fn rotation_history(&self) -> Result<Vec<RotationRecord>> {
        rows::newest_first(&self.store.conn())
    }

    fn rotation(&self, id: &str) -> Result<RotationRecord> {
        rows::load(&self.store.conn(), id)
    }

    fn rotation_account(&self, id: &str) -> Result<(String, Vec<String>)> {
        rows::account_and_targets(&self.store.conn(), id)
    }

    /// Waits for this run's turn to run the rotation's steps: takes the claim when nobody
    /// holds it or its holder's process is gone, else looks again until it is released or
    /// the rotation ended. `cancel` asks the holder to cancel meanwhile.
    async fn turn(&self, id: &str, cancel: bool) -> Result<Turn<'_>> {
        let claim = Uuid::new_v4().to_string();
        loop {
            let attempt = self.store.write(|tx| match rows::holder(tx, id)? {
                rows::Holder::Ended => Ok(Attempt::Ended),
                rows::Holder::Run(owner) if !owner::is_gone(&self.config.data_dir, Some(&owner)) => {
                    if cancel {
                        rows::set_cancel_asked_by(tx, id, Some(self.owner.id()))?;
                    }
                    Ok(Attempt::Held)
                }
                // Nobody, or a process that ended midway (killed, crashed): this run goes on.
                rows::Holder::Nobody | rows::Holder::Run(_) => {
                    rows::claim(tx, id, self.owner.id(), &claim)?;
                    Ok(Attempt::Claimed)
                }
            })?;
            match attempt {
                Attempt::Claimed => {
                    return Ok(Turn::Mine(Claim { store: &self.store, rotation: id.to_owned(), claim }));
                }
                Attempt::Ended => return Ok(Turn::Ended(self.rotation(id)?)),
                Attempt::Held => tokio::time::sleep(CLAIM_POLL).await,
            }
        }
    }

    /// Whether a live process waits for this run to cancel the rotation.
    fn cancel_asked(&self, id: &str) -> Result<bool> {
        let asker = rows::cancel_asked_by(&self.store.conn(), id)?;
        Ok(asker.is_some_and(|asker| !owner::is_gone(&self.config.data_dir, Some(&asker))))
    }

    /// The token the targets held when the rotation started: until step 6 replaces it,
    /// and in a credential store at the version the rotation read, whatever someone
    /// wrote there since.
    async fn old_token(&self, id: &str, targets: &[String]) -> Result<Secret> {
        let user = targets.first().ok_or_else(|| Error::invalid("rotation", "the rotation has no token to rotate"))?;
        let key = VaultKey::from_user(user)
            .ok_or_else(|| Error::invalid("rotation", "the rotation has no token to rotate"))?;
        let version = rows::store_versions(&self.store.conn(), id)?.get(user).copied();
        Ok(self.read_secret_at(&key, version).await?.0)
    }

    /// Whether Twilio accepts these credentials now (401 means no).
    async fn token_works(&self, credentials: Credentials<'_>) -> Result<bool> {
        match self.services.twilio.fetch_account(credentials).await {
            Ok(_) => Ok(true),
            Err(TwilioError::Rejected(api)) if matches!(api.status, 401 | 403) => Ok(false),
            Err(err) => Err(Error::Connect(err.into())),
        }
    }

    /// Asks Twilio whether the token works, pausing longer each time it does not yet
    /// (1 s, 2 s, 4 s, then every 8 s) until the propagation timeout: a fresh token can
    /// take a while to be accepted everywhere, and asking in a tight loop is a storm.
    async fn await_accepted(&self, credentials: Credentials<'_>) -> Result<bool> {
        let deadline = Instant::now() + self.config.rotation_propagation_timeout;
        let mut pause = Duration::from_secs(1);
        loop {
            if self.token_works(credentials).await? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    }

    /// Runs a recorded rotation from the step it reached to the end. Dropping the future
    /// between or inside steps loses nothing: `cancel_rotation` or `run_rotation` again
    /// (what `--resume` does) takes it from where it stands. While another process runs
    /// it, this waits and reports how that run ended: its record when it completed,
    /// `cancelled` when it was cancelled.
    pub async fn run_rotation(&self, id: &str) -> Result<RotationRecord> {
        match self.turn(id, false).await? {
            Turn::Mine(_claim) => self.run_claimed(id).await,
            Turn::Ended(record) if record.step == RotationStep::Cancelled => Err(cancelled_elsewhere(&record)),
            Turn::Ended(completed) => Ok(completed),
        }
    }

    /// Runs the steps of a rotation this run holds the claim of.
    async fn run_claimed(&self, id: &str) -> Result<RotationRecord> {
        let (account_sid, targets) = self.rotation_account(id)?;
        let pending = VaultKey::RotationPending(id.to_owned());
        loop {
            let step = self.rotation(id)?.step;
            // A process asked to cancel meanwhile: it is this run's to do, before promotion.
            if step.before_promotion() && self.cancel_asked(id)? {
                match self.cancel_claimed(id).await {
                    Ok(cancelled) => return Err(cancelled_elsewhere(&cancelled)),
                    // Promoted before a crash: only finishing keeps the new token working.
                    Err(Error::RotationPromoted) => {}
                    Err(err) => return Err(err),
                }
            }
            match step {
                RotationStep::Started => {
                    let old = self.old_token(id, &targets).await?;
                    let credentials = Credentials::auth_token(&account_sid, &old);
                    // Twilio keeps one secondary: whatever is there goes first. Before this
                    // rotation made any, one that existed was someone else's.
                    let existed =
                        self.services.twilio.delete_secondary_auth_token(credentials).await.map_err(twilio)?;
                    self.store.write(|tx| rows::note_secondary_created(tx, id, existed))?;
                    let secondary =
                        self.services.twilio.create_secondary_auth_token(credentials).await.map_err(twilio)?;
                    self.stop_after(1);
                    self.vault.put(&pending, &secondary).await?;
                    rows::set_step(&self.store.conn(), id, RotationStep::SecondaryStored)?;
                    self.stop_after(2);
                }
                RotationStep::SecondaryStored => {
                    let new = self.vault.get(&pending).await?;
                    let credentials = Credentials::auth_token(&account_sid, &new);
                    if !self.await_accepted(credentials).await? {
                        // Gone at Twilio (deleted elsewhere): make a new one, once. Never a loop.
                        if rows::secondaries_created(&self.store.conn(), id)? >= 2 {
                            return Err(Error::invalid(
                                "rotation",
                                "Twilio does not accept the new secondary Auth Token; nothing was promoted. Try `patchbay credential rotate --resume` later, or `--cancel`",
                            ));
                        }
                        rows::set_step(&self.store.conn(), id, RotationStep::Started)?;
                        continue;
                    }
                    rows::set_step(&self.store.conn(), id, RotationStep::Validated)?;
                    self.stop_after(3);
                }
                RotationStep::Validated => {
                    // Before anything is promoted: someone else's newer version of a
                    // store's secret stops the rotation here, with nothing changed.
                    let versions = rows::store_versions(&self.store.conn(), id)?;
                    self.ensure_store_versions(&versions).await?;
                    let old = self.old_token(id, &targets).await?;
                    let credentials = Credentials::auth_token(&account_sid, &old);
                    // After a crash the promotion may have happened: the old token then fails.
                    if self.token_works(credentials).await? {
                        self.services.twilio.promote_secondary_auth_token(credentials).await.map_err(twilio)?;
                    }
                    rows::set_step(&self.store.conn(), id, RotationStep::Promoted)?;
                    self.stop_after(4);
                }
                RotationStep::Promoted => {
                    let new = self.vault.get(&pending).await?;
                    let credentials = Credentials::auth_token(&account_sid, &new);
                    if !self.await_accepted(credentials).await? {
                        return Err(Error::invalid(
                            "rotation",
                            format!(
                                "Twilio promoted the new Auth Token but has not accepted it within {} s; it usually does within a minute. Run `patchbay credential rotate --resume` to finish",
                                self.config.rotation_propagation_timeout.as_secs()
                            ),
                        ));
                    }
                    rows::set_step(&self.store.conn(), id, RotationStep::Propagated)?;
                    self.stop_after(5);
                }
                RotationStep::Propagated => {
                    let new = self.vault.get(&pending).await?;
                    let versions = rows::store_versions(&self.store.conn(), id)?;
                    for user in &targets {
                        let Some(target) = VaultKey::from_user(user) else { continue };
                        self.store_new_token(&target, &new, versions.get(user).copied()).await?;
                    }
                    self.vault.delete(&pending).await?;
                    rows::set_step(&self.store.conn(), id, RotationStep::Stored)?;
                    self.stop_after(6);
                }
                RotationStep::Stored => {
                    let dependents = rows::dependents(&self.store.conn(), id)?;
                    let mut revalidated = Vec::new();
                    for connection in dependents {
                        let checked = match self.test_connection(&connection).await {
                            Ok(view) => view,
                            Err(_) => match self.connection(&connection) {
                                Ok(view) => view,
                                Err(_) => continue, // deleted meanwhile
                            },
                        };
                        revalidated.push(Dependent {
                            id: checked.id.clone(),
                            name: checked.name.clone(),
                            folder: checked.folder.clone(),
                            status: status_label(&checked),
                        });
                    }
                    let failed = revalidated.iter().filter(|d| d.status != "connected").count();
                    let outcome = format!(
                        "rotated; {} of {} dependent connections connected with the new token",
                        revalidated.len() - failed,
                        revalidated.len()
                    );
                    self.store.write(|tx| rows::finish(tx, id, RotationStep::Done, &outcome, &revalidated))?;
                    self.stop_after(7);
                }
                RotationStep::Done | RotationStep::Cancelled => return self.rotation(id),
            }
        }
    }
}

fn twilio(err: TwilioError) -> Error {
    Error::Connect(err.into())
}

fn test_credentials_refused() -> Error {
    Error::invalid(
        "test_credentials",
        "Test Credentials cannot be rotated: Twilio refuses auth-token requests made with them",
    )
}

/// The rotations table: each rotation's progress, so a crash at any step can be resumed.
mod rows {
    use rusqlite::{Connection, OptionalExtension, params};

    use super::{Dependent, RotationPlan, RotationRecord, RotationStep, StoreVersions};
    use crate::error::{Error, Result};
    use crate::store::now;

    /// Records a new rotation at its first step; refused while the account has an unfinished one.
    pub(super) fn insert(
        db: &Connection,
        id: &str,
        plan: &RotationPlan,
        targets: &[String],
        dependents: &[&str],
        versions: &StoreVersions,
    ) -> Result<()> {
        db.execute(
            "INSERT INTO rotations (id, account_sid, subject, targets, dependents, step, started_at, store_versions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                plan.account_sid,
                plan.subject,
                serde_json::to_string(targets).unwrap(),
                serde_json::to_string(dependents).unwrap(),
                RotationStep::Started,
                now(),
                serde_json::to_string(versions).unwrap()
            ],
        )
        .map_err(|err| match err {
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Error::invalid(
                    "rotation",
                    format!(
                        "a rotation of account {} is unfinished; run `patchbay credential rotate --resume` first",
                        plan.account_sid
                    ),
                )
            }
            other => other.into(),
        })?;
        Ok(())
    }

    /// Ids of the rotations not finished yet, oldest first.
    pub(super) fn unfinished(db: &Connection) -> Result<Vec<String>> {
        let mut statement = db.prepare("SELECT id FROM rotations WHERE finished_at IS NULL ORDER BY started_at")?;
        Ok(statement.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn newest_first(db: &Connection) -> Result<Vec<RotationRecord>> {
        let mut statement = db.prepare(&format!("SELECT {RECORD} FROM rotations ORDER BY started_at DESC"))?;
        Ok(statement.query_map([], record)?.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn load(db: &Connection, id: &str) -> Result<RotationRecord> {
        db.query_row(&format!("SELECT {RECORD} FROM rotations WHERE id = ?1"), [id], record)
            .optional()?
            .ok_or_else(|| Error::NotFound { what: "rotation", id: id.to_owned() })
    }

    const RECORD: &str = "id, account_sid, subject, step, outcome, revalidated, started_at, finished_at";

    fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RotationRecord> {
        Ok(RotationRecord {
            id: r.get(0)?,
            account_sid: r.get(1)?,
            subject: r.get(2)?,
            step: r.get(3)?,
            outcome: r.get(4)?,
            revalidated: r.get::<_, Option<String>>(5)?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
            started_at: r.get(6)?,
            finished_at: r.get(7)?,
        })
    }

    /// The account and the vault entries (users) that hold its token.
    pub(super) fn account_and_targets(db: &Connection, id: &str) -> Result<(String, Vec<String>)> {
        let (account_sid, targets): (String, String) =
            db.query_row("SELECT account_sid, targets FROM rotations WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((account_sid, serde_json::from_str(&targets).unwrap_or_default()))
    }

    /// The KV v2 version of each target kept in a credential store, as the rotation read it.
    pub(super) fn store_versions(db: &Connection, id: &str) -> Result<StoreVersions> {
        let json: String = db.query_row("SELECT store_versions FROM rotations WHERE id = ?1", [id], |r| r.get(0))?;
        Ok(serde_json::from_str(&json).unwrap_or_default())
    }

    /// The connections to re-validate once the new token is stored.
    pub(super) fn dependents(db: &Connection, id: &str) -> Result<Vec<String>> {
        let json: String = db.query_row("SELECT dependents FROM rotations WHERE id = ?1", [id], |r| r.get(0))?;
        Ok(serde_json::from_str(&json).unwrap_or_default())
    }

    /// Records that this rotation creates a secondary, and whether the DELETE before it
    /// removed one this rotation had not made.
    pub(super) fn note_secondary_created(db: &Connection, id: &str, existed: bool) -> Result<()> {
        db.execute(
            "UPDATE rotations SET revoked_foreign_secondary = revoked_foreign_secondary OR (?2 AND secondaries_created = 0),
                 secondaries_created = secondaries_created + 1
             WHERE id = ?1",
            params![id, existed],
        )?;
        Ok(())
    }

    pub(super) fn secondaries_created(db: &Connection, id: &str) -> Result<u32> {
        Ok(db.query_row("SELECT secondaries_created FROM rotations WHERE id = ?1", [id], |r| r.get(0))?)
    }

    /// Who runs the rotation's steps now.
    pub(super) enum Holder {
        Ended,
        Nobody,
        /// A run of the open core with this owner id.
        Run(String),
    }

    pub(super) fn holder(db: &Connection, id: &str) -> Result<Holder> {
        let (ended, owner): (bool, Option<String>) = db
            .query_row("SELECT finished_at IS NOT NULL, claimed_by FROM rotations WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
            .ok_or_else(|| Error::NotFound { what: "rotation", id: id.to_owned() })?;
        Ok(match (ended, owner) {
            (true, _) => Holder::Ended,
            (false, None) => Holder::Nobody,
            (false, Some(owner)) => Holder::Run(owner),
        })
    }

    /// Claims the rotation for the run `claim` of the open core `owner`.
    pub(super) fn claim(db: &Connection, id: &str, owner: &str, claim: &str) -> Result<()> {
        db.execute("UPDATE rotations SET claimed_by = ?2, claim = ?3 WHERE id = ?1", params![id, owner, claim])?;
        Ok(())
    }

    /// Releases the run `claim`'s claim, unless another run took it over meanwhile.
    pub(super) fn release(db: &Connection, id: &str, claim: &str) -> Result<()> {
        db.execute(
            "UPDATE rotations SET claimed_by = NULL, claim = NULL WHERE id = ?1 AND claim = ?2",
            params![id, claim],
        )?;
        Ok(())
    }

    pub(super) fn cancel_asked_by(db: &Connection, id: &str) -> Result<Option<String>> {
        Ok(db.query_row("SELECT cancel_asked_by FROM rotations WHERE id = ?1", [id], |r| r.get(0))?)
    }

    /// Records which open core waits for the claimant to cancel (None: nobody any more).
    pub(super) fn set_cancel_asked_by(db: &Connection, id: &str, owner: Option<&str>) -> Result<()> {
        db.execute("UPDATE rotations SET cancel_asked_by = ?2 WHERE id = ?1", params![id, owner])?;
        Ok(())
    }

    pub(super) fn set_step(db: &Connection, id: &str, step: RotationStep) -> Result<()> {
        db.execute("UPDATE rotations SET step = ?2 WHERE id = ?1", params![id, step])?;
        Ok(())
    }

    /// Ends the rotation with its outcome, which also says when a secondary token this
    /// rotation did not make was revoked (the output, the history and the window show it).
    pub(super) fn finish(
        db: &Connection,
        id: &str,
        step: RotationStep,
        outcome: &str,
        revalidated: &[Dependent],
    ) -> Result<()> {
        let revalidated = serde_json::to_string(revalidated).unwrap_or_else(|_| "[]".into());
        db.execute(
            "UPDATE rotations SET step = ?2, outcome = ?3 || CASE WHEN revoked_foreign_secondary
                 THEN '; a secondary Auth Token this rotation did not make was revoked first (someone may have been rotating by hand)'
                 ELSE '' END,
                 revalidated = ?4, finished_at = ?5
             WHERE id = ?1",
            params![id, step, outcome, revalidated, now()],
        )?;
        Ok(())
    }
}
