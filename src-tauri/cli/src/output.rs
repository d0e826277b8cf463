//! How the CLI prints: tables for people, JSON for scripts (`--json`).

use patchbay_core::catalog;
use patchbay_core::credential_stores::{CredentialStore, FolderStore, OS_STORE, StoreCheck};
use patchbay_core::rotation::{RotationPlan, RotationRecord};
use patchbay_core::{
    Asset, AuthRef, Connection, ConnectionPage, ConnectionStatus, Connector, Error, Folder, FolderContents,
};
use serde::Serialize;

pub struct Output {
    pub json: bool,
}

impl Output {
    fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string(value).expect("output types serialise"));
        } else {
            println!("{}", human());
        }
    }

    pub fn error(&self, err: &Error) {
        // A cancel that lost against a run that completed the rotation: that run's record.
        let completed = match err {
            Error::RotationCompleted(record) => Some(record),
            _ => None,
        };
        if self.json {
            let mut body = serde_json::to_value(err.to_body()).expect("error bodies serialise");
            if let Some(record) = completed {
                body["rotation"] = serde_json::to_value(record).expect("rotations serialise");
            }
            eprintln!("{body}");
        } else {
            eprintln!("error: {err} [{}]", err.code());
            if let Some(record) = completed {
                eprintln!("{}", rotation(record));
            }
        }
    }

    pub fn done(&self, message: &str) {
        self.emit(&serde_json::json!({ "ok": true, "message": message }), || message.to_owned());
    }

    /// The API's platform secrets: printed because the person asked for them.
    pub fn credentials(&self, user: &str, organization: &str) {
        self.emit(&serde_json::json!({ "user": user, "organization": organization }), || {
            format!("Authorization: User {user}, Organization {organization}")
        });
    }

    pub fn rotation_plan(&self, plan: &RotationPlan) {
        // The plan goes to stderr in JSON mode so stdout stays the result alone.
        let human = || {
            let mut lines =
                vec![format!("Rotating the Auth Token of {} (account {}).", plan.subject, plan.account_sid)];
            lines.push(format!("{} copies in the vault; these connections depend on it:", plan.copies));
            lines.extend(plan.dependents.iter().map(|d| format!("  {}/{}  ({})", d.folder, d.name, d.status)));
            lines.push(format!("Warning: {}", plan.warning));
            lines.join("\n")
        };
        if self.json {
            eprintln!("{}", serde_json::to_string(plan).expect("plans serialise"));
        } else {
            eprintln!("{}", human());
        }
    }

    pub fn rotations(&self, rotations: &[RotationRecord]) {
        self.emit(rotations, || {
            if rotations.is_empty() {
                return "no rotations".to_owned();
            }
            rotations.iter().map(rotation).collect::<Vec<_>>().join("\n")
        });
    }

    pub fn folder(&self, folder: &Folder) {
        self.emit(folder, || folder.path.clone());
    }

    pub fn folders(&self, folders: &[Folder]) {
        self.emit(folders, || {
            folders
                .iter()
                .map(|f| {
                    let count = match f.connection_count {
                        0 => String::new(),
                        1 => "  (1 connection)".to_owned(),
                        n => format!("  ({n} connections)"),
                    };
                    format!("{}{}{count}", "  ".repeat(f.depth as usize), f.name)
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
    }

    pub fn deleted_folder(&self, path: &str, removed: &FolderContents) {
        self.emit(&serde_json::json!({ "ok": true, "path": path, "removed": removed }), || {
            format!("deleted folder '{path}' with {removed}")
        });
    }

    pub fn connectors(&self, connectors: &[&Connector]) {
        self.emit(connectors, || {
            table(
                &["KEY", "ELEMENT KEY", "NAME", "CATEGORY", "AUTH METHODS", "DESCRIPTION"],
                connectors.iter().map(|c| {
                    let methods = c.auth_methods.iter().map(|m| m.label.as_str()).collect::<Vec<_>>().join(", ");
                    vec![
                        c.key.clone(),
                        c.element_key.clone(),
                        c.name.clone(),
                        c.category.clone(),
                        methods,
                        c.description.clone(),
                    ]
                }),
            )
        });
    }

    pub fn credential_store(&self, store: &CredentialStore) {
        self.emit(store, || {
            format!("registered credential store '{}' ({}, mount {})", store.name, store.address, store.mount)
        });
    }

    pub fn credential_stores(&self, stores: &[CredentialStore]) {
        self.emit(stores, || {
            table(
                &["NAME", "ADDRESS", "MOUNT", "NAMESPACE", "SIGNS IN WITH"],
                stores.iter().map(|s| {
                    vec![
                        s.name.clone(),
                        s.address.clone(),
                        s.mount.clone(),
                        s.namespace.clone().unwrap_or_default(),
                        s.auth.to_string(),
                    ]
                }),
            )
        });
    }

    pub fn store_check(&self, check: &StoreCheck) {
        self.emit(check, || {
            format!(
                "credential store '{}' works (version {}; policies: {})",
                check.name,
                check.version.as_deref().unwrap_or("unknown"),
                check.policies.join(", ")
            )
        });
    }

    pub fn folder_store(&self, choice: &FolderStore) {
        self.emit(choice, || {
            let store = match choice.store.as_str() {
                OS_STORE => "the OS vault".to_owned(),
                name => format!("credential store '{name}'"),
            };
            let chosen = match &choice.chosen_in {
                Some(folder) if *folder == choice.folder => "chosen here".to_owned(),
                Some(folder) => format!("as folder '{folder}'"),
                None => "nobody chose another".to_owned(),
            };
            format!("new credential assets of '{}' go to {store} ({chosen})", choice.folder)
        });
    }

    pub fn asset(&self, asset: &Asset) {
        self.emit(asset, || format!("created credential asset '{}' in '{}'", asset.name, asset.folder));
    }

    pub fn asset_destinations(&self, asset: &Asset) {
        self.emit(asset, || {
            let to = asset.destinations.iter().map(ToString::to_string).collect::<Vec<_>>();
            if to.is_empty() {
                format!("credential asset '{}' may not be sent anywhere yet", asset.name)
            } else {
                format!("credential asset '{}' may go to: {}", asset.name, to.join(", "))
            }
        });
    }

    pub fn assets(&self, assets: &[Asset]) {
        self.emit(assets, || {
            table(
                &["NAME", "FOLDER", "VALUE IN", "MAY GO TO", "USED BY", "CREATED"],
                assets.iter().map(|a| {
                    let source = match (&a.store, &a.link) {
                        (Some(store), Some(link)) => format!("{store}: {} ({}), linked", link.path, link.key),
                        (Some(store), None) => format!("{store} (managed)"),
                        (None, _) => "OS vault".to_owned(),
                    };
                    let to = a.destinations.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    let to = if to.is_empty() { "(first use)".to_owned() } else { to };
                    vec![a.name.clone(), a.folder.clone(), source, to, a.used_by.to_string(), a.created_at.clone()]
                }),
            )
        });
    }

    pub fn connection(&self, c: &Connection) {
        self.emit(c, || {
            let method = catalog::connector(&c.connector).and_then(|connector| connector.auth_method(&c.auth_method));
            let mut rows = vec![
                ("id".to_owned(), c.id.clone()),
                ("name".to_owned(), c.name.clone()),
                ("folder".to_owned(), c.folder.clone()),
                ("connector".to_owned(), connector_name(c)),
                ("auth method".to_owned(), method.map_or_else(|| c.auth_method.clone(), |m| m.label.clone())),
            ];
            rows.extend(c.summary().into_iter().map(|(label, value)| (label.to_lowercase(), value)));
            if let Some(secret) = method.and_then(|method| method.secret_field()) {
                rows.push((secret.label.to_lowercase(), auth(&c.auth)));
            }
            rows.push(("status".to_owned(), status(&c.status)));
            rows.push(("last checked".to_owned(), c.last_checked_at.clone().unwrap_or_else(|| "never".into())));
            if let (Some(destination), AuthRef::Asset { name, .. }) = (&c.asset_first_use, &c.auth) {
                rows.push((
                    "note".to_owned(),
                    format!("first use of credential asset '{name}': from now on it may go to {destination} only (patchbay asset allow adds more)"),
                ));
            }
            let width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
            rows.iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect::<Vec<_>>().join("\n")
        });
    }

    pub fn connections(&self, page: &ConnectionPage) {
        self.emit(page, || {
            let shown = table(
                &["ID", "NAME", "FOLDER", "CONNECTOR", "SUMMARY", "STATUS", "LAST CHECKED"],
                page.items.iter().map(|c| {
                    let summary = c.summary().into_iter().filter(|(_, value)| !value.is_empty());
                    vec![
                        c.id.clone(),
                        c.name.clone(),
                        c.folder.clone(),
                        connector_name(c),
                        summary.map(|(label, value)| format!("{label}: {value}")).collect::<Vec<_>>().join(" · "),
                        status(&c.status),
                        c.last_checked_at.clone().unwrap_or_else(|| "never".into()),
                    ]
                }),
            );
            format!("{shown}\n{} of {} connections", page.items.len(), page.total)
        });
    }
}

/// One rotation for people: what, when, how it ended and each dependent's result.
fn rotation(r: &RotationRecord) -> String {
    let checked =
        r.revalidated.iter().map(|d| format!("\n    {}/{}: {}", d.folder, d.name, d.status)).collect::<String>();
    format!(
        "{}  {}  account {}  started {}  finished {}\n  {}{checked}",
        r.id,
        r.subject,
        r.account_sid,
        r.started_at,
        r.finished_at.as_deref().unwrap_or("not yet"),
        r.outcome.as_deref().unwrap_or(&format!("unfinished at step '{}'", r.step)),
    )
}

fn connector_name(c: &Connection) -> String {
    catalog::connector(&c.connector).map_or_else(|| c.connector.clone(), |connector| connector.name.clone())
}

fn auth(auth: &AuthRef) -> String {
    match auth {
        AuthRef::Own => "its own, in the OS vault".into(),
        AuthRef::Asset { name, folder } => format!("credential asset '{name}' ({folder})"),
        AuthRef::MissingAsset => "credential asset deleted".into(),
    }
}

fn status(status: &ConnectionStatus) -> String {
    match status {
        ConnectionStatus::Connected => "Connected".into(),
        ConnectionStatus::Failed { message, .. } => format!("Failed: {message}"),
        ConnectionStatus::NotChecked => "Not checked".into(),
    }
}

fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| rows.iter().map(|r| r[i].chars().count()).chain([h.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    std::iter::once(line(headers.to_vec()))
        .chain(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())))
        .collect::<Vec<_>>()
        .join("\n")
}
