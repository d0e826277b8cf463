//! Large stores for benchmarks and speed scripts: folders and connections written
//! straight into SQLite (no Twilio, no vault), shaped like a big tenant's.

use std::path::Path;

use rusqlite::params;

use crate::connections::search_text;
use crate::error::Result;
use crate::fields::{Details, FieldValue, FieldValues};
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
        let mut insert_connection = tx.prepare(
            "INSERT INTO connections (id, folder_id, connector, auth_method, name, fields, details, auth_kind, status,
                     lifecycle, created_at, updated_at, search_text, name_key)
                 VALUES (?1, ?2, 'twilio', 'auth_token', ?3, ?4, ?5, 'own', 'not_checked', 'active', ?6, ?6, ?7, ?8)",
        )?;
        for index in 0..connections {
            let folder = folder_ids[index % folder_ids.len().max(1)];
            let name =
                format!("Twilio {} {index:06}", ["Alerts", "Invoices", "Support", "Marketing", "Ops"][index % 5]);
            let sid = format!("AC{index:032x}");
            let phone = format!("+1555{index:07}");
            let fields = FieldValues::from([
                ("account_sid".to_owned(), FieldValue::Text(sid)),
                ("phone_number".to_owned(), FieldValue::Text(phone)),
                ("test_credentials".to_owned(), FieldValue::Toggle(false)),
            ]);
            let details = Details::from([
                ("account_name".to_owned(), format!("Customer {:04}", index % 5000)),
                ("account_type".to_owned(), "Full".to_owned()),
            ]);
            insert_connection.execute(params![
                uuid::Uuid::new_v4().to_string(),
                folder,
                name,
                serde_json::to_string(&fields).expect("values serialise"),
                serde_json::to_string(&details).expect("details serialise"),
                stamp,
                search_text(&name, &fields, &details),
                name_key(&name),
            ])?;
        }
    }
    tx.commit()?;
    Ok(Seeded { folder_paths, connections })
}
