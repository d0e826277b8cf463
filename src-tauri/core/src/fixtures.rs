//! Large stores for benchmarks and speed scripts: folders and connections written
//! straight into SQLite (no Twilio, no vault), shaped like a big tenant's.

use std::path::Path;

use rusqlite::params;

use crate::connections::{TWILIO, TWILIO_AUTH_TOKEN, search_text};
use crate::error::Result;
use crate::store::{Store, now};
use crate::text::name_key;

/// What [`seed`] wrote, for picking realistic queries.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Paths of every folder, in creation order.
    pub folder_paths: Vec<String>,
    pub connections: usize,
}

/// Adds `folders` folders (under `Shared`, about a hundred per level) and `connections`
/// connections spread evenly across them to the database at `database`.
pub fn seed(database: &Path, folders: usize, connections: usize) -> Result<Seeded> {
    let store = Store::open(database)?;
    let mut conn = store.conn();
    let tx = conn.transaction()?;
    let stamp = now();
    let shared: i64 =
        tx.query_row("SELECT id FROM folders WHERE parent_id IS NULL AND name = 'Shared'", [], |r| r.get(0))?;
    let mut folder_ids = Vec::with_capacity(folders);
    let mut folder_paths: Vec<String> = Vec::with_capacity(folders);
    {
        let mut insert_folder = tx.prepare(
            "INSERT INTO folders (parent_id, name, name_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        )?;
        for index in 0..folders {
            // Teams at the first level, their projects below.
            let (parent, parent_path, name) = if index % 100 == 0 || folder_ids.is_empty() {
                (shared, "Shared".to_owned(), format!("Team {:04}", index / 100))
            } else {
                let team = (index / 100) * 100;
                (folder_ids[team], folder_paths[team].clone(), format!("Project {index:05}"))
            };
            insert_folder.execute(params![parent, name, name_key(&name), stamp])?;
            folder_ids.push(tx.last_insert_rowid());
            folder_paths.push(format!("{parent_path}/{name}"));
        }
        let mut insert_connection = tx
            .prepare(
                "INSERT INTO connections (id, folder_id, connector, name, account_sid, phone_number, test_credentials,
                     auth_kind, status, account_friendly_name, account_type, lifecycle, created_at, updated_at, search_text,
                     name_key, auth_method)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 'own', 'not_checked', ?7, 'Full', 'active', ?8, ?8, ?9, ?10, ?11)",
            )?;
        for index in 0..connections {
            let folder = folder_ids[index % folder_ids.len().max(1)];
            let name =
                format!("Twilio {} {index:06}", ["Alerts", "Invoices", "Support", "Marketing", "Ops"][index % 5]);
            let sid = format!("AC{index:032x}");
            let phone = format!("+1555{index:07}");
            let friendly = format!("Customer {:04}", index % 5000);
            insert_connection.execute(params![
                uuid::Uuid::new_v4().to_string(),
                folder,
                TWILIO,
                name,
                sid,
                phone,
                friendly,
                stamp,
                search_text(&name, &phone, &sid, Some(&friendly)),
                name_key(&name),
                TWILIO_AUTH_TOKEN,
            ])?;
        }
    }
    tx.commit()?;
    Ok(Seeded { folder_paths, connections })
}
