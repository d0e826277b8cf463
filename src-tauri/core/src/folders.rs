//! Folders: a tree named by paths such as `Shared/Finance`.

use std::collections::HashMap;
use std::fmt;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use ts_rs::TS;

use crate::error::{Error, Result, plural};
use crate::store::now;
use crate::text::name_key;
use unicode_normalization::UnicodeNormalization;

pub const MAX_NAME_CHARS: usize = 120;

/// One folder as the tree shows it. `list` returns them in display order (depth-first,
/// siblings by name), so a view can render a flat, virtualised list.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct Folder {
    #[ts(type = "number")]
    pub id: i64,
    #[ts(type = "number | null")]
    pub parent_id: Option<i64>,
    pub name: String,
    pub path: String,
    pub depth: u32,
    pub child_count: u32,
    pub connection_count: u32,
}

/// What a folder holds, counted through all its sub-folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct FolderContents {
    pub folders: u32,
    pub connections: u32,
    pub assets: u32,
}

impl FolderContents {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for FolderContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [(self.folders, "sub-folder"), (self.connections, "connection"), (self.assets, "credential asset")];
        let listed: Vec<String> =
            parts.iter().filter(|(count, _)| *count > 0).map(|(count, noun)| plural(*count as usize, noun)).collect();
        match listed.as_slice() {
            [] => f.write_str("nothing"),
            [only] => f.write_str(only),
            [init @ .., last] => write!(f, "{} and {last}", init.join(", ")),
        }
    }
}

/// Trims a folder, asset or connection name, normalises it (NFC) and checks the rules
/// every name shares.
pub fn clean_name(field: &'static str, raw: &str) -> Result<String> {
    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        return Err(Error::invalid(field, format!("the {field} must not be blank")));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(field, format!("the {field} must be at most {MAX_NAME_CHARS} characters")));
    }
    // They mean "this folder" and "its parent" wherever paths are written.
    if name == "." || name == ".." {
        return Err(Error::invalid(field, format!("the {field} must not be '.' or '..'; choose a name")));
    }
    if name.contains('/') {
        return Err(Error::invalid(
            field,
            format!("the {field} must not contain '/' (it separates folders in a path)"),
        ));
    }
    if let Some(why) = name.chars().find_map(crate::text::forbidden_in_name) {
        return Err(Error::invalid(field, format!("the {field} must not contain {why}")));
    }
    Ok(name)
}

/// Splits `Shared/Finance` into checked segment names. One leading or trailing `/` is
/// tolerated; a blank segment (`Shared/   `) is an error, not a shorter path.
pub fn parse_path(raw: &str) -> Result<Vec<String>> {
    let trimmed = raw.trim_start();
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.trim().is_empty() {
        return Err(Error::invalid("folder", "the folder path must not be empty, e.g. Shared/Finance"));
    }
    trimmed.split('/').map(|segment| clean_name("folder", segment)).collect()
}

fn display_path(segments: &[String]) -> String {
    segments.join("/")
}

/// The id of the folder at `path`.
pub(crate) fn resolve(conn: &Connection, path: &str) -> Result<i64> {
    let segments = parse_path(path)?;
    resolve_segments(conn, &segments)?.ok_or_else(|| Error::FolderNotFound(display_path(&segments)))
}

fn resolve_segments(conn: &Connection, segments: &[String]) -> Result<Option<i64>> {
    let mut statement =
        conn.prepare_cached("SELECT id FROM folders WHERE ifnull(parent_id, 0) = ?1 AND name_key = ?2")?;
    let mut parent = 0_i64;
    for segment in segments {
        match statement.query_row(params![parent, name_key(segment)], |row| row.get(0)).optional()? {
            Some(id) => parent = id,
            None => return Ok(None),
        }
    }
    Ok(Some(parent))
}

/// The path of folder `id`, as stored (original case).
pub(crate) fn path_of(conn: &Connection, id: i64) -> Result<String> {
    let mut statement = conn.prepare_cached("SELECT parent_id, name FROM folders WHERE id = ?1")?;
    let mut segments = Vec::new();
    let mut current = Some(id);
    while let Some(folder_id) = current {
        let (parent, name): (Option<i64>, String) =
            statement.query_row([folder_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        segments.push(name);
        current = parent;
    }
    segments.reverse();
    Ok(segments.join("/"))
}

/// The paths of many folders at once: one query per level of the tree, not per folder
/// (a page of search results may come from a hundred folders).
pub(crate) fn paths_of(conn: &Connection, ids: impl IntoIterator<Item = i64>) -> Result<HashMap<i64, String>> {
    let mut rows: HashMap<i64, (Option<i64>, String)> = HashMap::new();
    let mut wanted: Vec<i64> = ids.into_iter().collect();
    while !wanted.is_empty() {
        wanted.sort_unstable();
        wanted.dedup();
        let placeholders = vec!["?"; wanted.len()].join(", ");
        let mut statement =
            conn.prepare(&format!("SELECT id, parent_id, name FROM folders WHERE id IN ({placeholders})"))?;
        let found = statement.query_map(rusqlite::params_from_iter(&wanted), |row| {
            Ok((row.get::<_, i64>(0)?, (row.get::<_, Option<i64>>(1)?, row.get::<_, String>(2)?)))
        })?;
        for row in found {
            let (id, parent_and_name) = row?;
            rows.insert(id, parent_and_name);
        }
        if let Some(missing) = wanted.iter().find(|id| !rows.contains_key(id)) {
            return Err(Error::NotFound { what: "folder", id: missing.to_string() });
        }
        wanted = rows.values().filter_map(|(parent, _)| *parent).filter(|parent| !rows.contains_key(parent)).collect();
    }
    let mut paths: HashMap<i64, String> = HashMap::new();
    for &id in rows.keys() {
        let mut segments = Vec::new();
        let mut current = Some(id);
        while let Some(folder) = current {
            let (parent, name) = &rows[&folder];
            segments.push(name.as_str());
            current = *parent;
        }
        segments.reverse();
        paths.insert(id, segments.join("/"));
    }
    Ok(paths)
}

/// `folder` and its ancestors, nearest first.
pub(crate) fn ancestry(conn: &Connection, folder: i64) -> Result<Vec<i64>> {
    let mut statement = conn.prepare_cached("SELECT parent_id FROM folders WHERE id = ?1")?;
    let mut chain = vec![folder];
    while let Some(parent) =
        statement.query_row([*chain.last().expect("never empty")], |row| row.get::<_, Option<i64>>(0))?
    {
        chain.push(parent);
    }
    Ok(chain)
}

/// The value of `folders.default_store` that names the OS vault.
pub(crate) const OS_DEFAULT: &str = "os";

/// Which folder chose the store of `folder`'s new credential assets, and what it chose
/// (a store's id, or [`OS_DEFAULT`]): the nearest folder that names one, itself first.
pub(crate) fn chosen_store(conn: &Connection, folder: i64) -> Result<Option<(i64, String)>> {
    let mut statement = conn.prepare_cached("SELECT default_store FROM folders WHERE id = ?1")?;
    for id in ancestry(conn, folder)? {
        if let Some(store) = statement.query_row([id], |row| row.get::<_, Option<String>>(0))? {
            return Ok(Some((id, store)));
        }
    }
    Ok(None)
}

/// The id of the store `folder`'s new credential assets go to; None: the OS vault.
pub(crate) fn default_store(conn: &Connection, folder: i64) -> Result<Option<String>> {
    Ok(chosen_store(conn, folder)?.map(|(_, store)| store).filter(|store| store != OS_DEFAULT))
}

/// Names the store of the folder's new credential assets: a store's id, [`OS_DEFAULT`],
/// or None (as its parent folder).
pub(crate) fn set_default_store(conn: &Connection, folder: i64, store: Option<&str>) -> Result<()> {
    conn.execute("UPDATE folders SET default_store = ?2 WHERE id = ?1", params![folder, store])?;
    Ok(())
}

pub(crate) fn create(conn: &Connection, path: &str) -> Result<Folder> {
    let segments = parse_path(path)?;
    let (name, parent_segments) = segments.split_last().expect("parse_path never returns an empty path");
    let parent = match parent_segments {
        [] => None,
        _ => Some(
            resolve_segments(conn, parent_segments)?
                .ok_or_else(|| Error::FolderNotFound(display_path(parent_segments)))?,
        ),
    };
    ensure_name_free(conn, parent, name, None)?;
    let stamp = now();
    conn.execute(
        "INSERT INTO folders (parent_id, name, name_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![parent, name, name_key(name), stamp],
    )?;
    get(conn, conn.last_insert_rowid())
}

pub(crate) fn rename(conn: &Connection, path: &str, new_name: &str) -> Result<Folder> {
    let id = resolve(conn, path)?;
    let new_name = clean_name("name", new_name)?;
    let parent: Option<i64> = conn.query_row("SELECT parent_id FROM folders WHERE id = ?1", [id], |row| row.get(0))?;
    ensure_name_free(conn, parent, &new_name, Some(id))?;
    conn.execute(
        "UPDATE folders SET name = ?1, name_key = ?2, updated_at = ?3 WHERE id = ?4",
        params![new_name, name_key(&new_name), now(), id],
    )?;
    get(conn, id)
}

/// Moves the folder at `path` under `new_parent` (`None`: to the top level).
pub(crate) fn move_to(conn: &Connection, path: &str, new_parent: Option<&str>) -> Result<Folder> {
    let id = resolve(conn, path)?;
    let parent = new_parent.map(|parent| resolve(conn, parent)).transpose()?;
    if let Some(parent) = parent
        && ancestry(conn, parent)?.contains(&id)
    {
        return Err(Error::invalid("parent", "a folder cannot be moved into itself or one of its sub-folders"));
    }
    let name: String = conn.query_row("SELECT name FROM folders WHERE id = ?1", [id], |row| row.get(0))?;
    ensure_name_free(conn, parent, &name, Some(id))?;
    conn.execute("UPDATE folders SET parent_id = ?1, updated_at = ?2 WHERE id = ?3", params![parent, now(), id])?;
    get(conn, id)
}

/// Refuses a name a sibling has, or one that reads the same (see `text::name_key`).
fn ensure_name_free(conn: &Connection, parent: Option<i64>, name: &str, except: Option<i64>) -> Result<()> {
    let taken: Option<String> = conn
        .query_row(
            "SELECT name FROM folders WHERE ifnull(parent_id, 0) = ?1 AND name_key = ?2 AND id != ?3",
            params![parent.unwrap_or(0), name_key(name), except.unwrap_or(-1)],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(existing) = taken {
        let place = match parent {
            Some(parent) => format!("folder '{}'", path_of(conn, parent)?),
            None => "the top level".to_owned(),
        };
        return Err(Error::NameTaken { what: "folder", name: existing, place });
    }
    Ok(())
}

fn get(conn: &Connection, id: i64) -> Result<Folder> {
    let (parent_id, name): (Option<i64>, String) =
        conn.query_row("SELECT parent_id, name FROM folders WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let path = path_of(conn, id)?;
    let (child_count, connection_count) = conn.query_row(
        "SELECT (SELECT count(*) FROM folders WHERE parent_id = ?1),
                    (SELECT count(*) FROM connections WHERE folder_id = ?1)",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Folder { id, parent_id, name, depth: path.matches('/').count() as u32, path, child_count, connection_count })
}

/// The whole tree in display order, in one pass over the table.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Folder>> {
    let mut statement = conn.prepare_cached(
        "SELECT f.id, f.parent_id, f.name,
                    (SELECT count(*) FROM connections c WHERE c.folder_id = f.id)
             FROM folders f",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?, row.get::<_, String>(2)?, row.get::<_, u32>(3)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut children: HashMap<Option<i64>, Vec<usize>> = HashMap::new();
    for (index, (_, parent, _, _)) in rows.iter().enumerate() {
        children.entry(*parent).or_default().push(index);
    }
    for siblings in children.values_mut() {
        siblings.sort_by_cached_key(|&index| rows[index].2.to_lowercase());
    }

    let mut tree = Vec::with_capacity(rows.len());
    // Depth-first with an explicit stack: (row, depth, parent path).
    let mut stack: Vec<(usize, u32, String)> =
        children.get(&None).into_iter().flatten().rev().map(|&index| (index, 0, String::new())).collect();
    while let Some((index, depth, parent_path)) = stack.pop() {
        let (id, parent_id, name, connection_count) = &rows[index];
        let path = if parent_path.is_empty() { name.clone() } else { format!("{parent_path}/{name}") };
        let own_children = children.get(&Some(*id)).map(Vec::as_slice).unwrap_or_default();
        stack.extend(own_children.iter().rev().map(|&child| (child, depth + 1, path.clone())));
        tree.push(Folder {
            id: *id,
            parent_id: *parent_id,
            name: name.clone(),
            path,
            depth,
            child_count: own_children.len() as u32,
            connection_count: *connection_count,
        });
    }
    Ok(tree)
}

pub(crate) const SUBTREE: &str = "WITH RECURSIVE subtree(id) AS (
    SELECT ?1 UNION ALL SELECT f.id FROM folders f JOIN subtree s ON f.parent_id = s.id)";

/// `(asset name, connection id)` for assets in the subtree used by connections outside
/// it (a user of the asset was moved out).
pub(crate) fn assets_used_from_outside(conn: &Connection, folder: i64) -> Result<Vec<(String, String)>> {
    let mut statement = conn.prepare(&format!(
        "{SUBTREE} SELECT a.name, c.id FROM assets a JOIN connections c ON c.auth_asset_id = a.id
             WHERE a.folder_id IN subtree AND c.folder_id NOT IN subtree"
    ))?;
    statement
        .query_map([folder], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Error::from)
}

pub(crate) fn contents(conn: &Connection, folder: i64) -> Result<FolderContents> {
    conn.query_row(
        &format!(
            "{SUBTREE} SELECT (SELECT count(*) - 1 FROM subtree),
                (SELECT count(*) FROM connections WHERE folder_id IN subtree),
                (SELECT count(*) FROM assets WHERE folder_id IN subtree)"
        ),
        [folder],
        |row| Ok(FolderContents { folders: row.get(0)?, connections: row.get(1)?, assets: row.get(2)? }),
    )
    .map_err(Error::from)
}

/// Removes the folder row and, by cascade, its sub-folders; callers remove what they
/// hold first.
pub(crate) fn delete_row(conn: &Connection, folder: i64) -> Result<()> {
    conn.execute("DELETE FROM folders WHERE id = ?1", [folder])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite3")).unwrap();
        (dir, store)
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(clean_name("name", "  Finance ").unwrap(), "Finance");
        for bad in [
            "",
            "   ",
            "a/b",
            &"x".repeat(121),
            "Pay\u{202E}fdp.exe",
            "zero\u{200B}width",
            "\u{FEFF}Shared",
            "two\u{2028}lines",
            "\u{A0}\u{A0}",
            ".",
            " .. ",
        ] {
            assert_eq!(clean_name("name", bad).unwrap_err().code(), "invalid_input", "{bad:?}");
        }
        assert!(clean_name("name", "...").is_ok() && clean_name("name", ".env").is_ok(), "only . and .. mean a place");
        assert!(clean_name("name", &"é".repeat(120)).is_ok(), "the limit counts characters, not bytes");
        assert_eq!(clean_name("name", "Cafe\u{301}").unwrap(), "Café", "stored NFC");
        assert_eq!(parse_path("Shared/   ").unwrap_err().to_string(), "the folder must not be blank");
        assert_eq!(parse_path("/Shared/Finance/").unwrap(), ["Shared", "Finance"]);
    }

    #[test]
    fn tree_is_listed_depth_first_with_paths() {
        let (_dir, store) = store();
        let conn = store.conn();
        create(&conn, "Shared/Finance").unwrap();
        create(&conn, "Shared/Finance/EMEA").unwrap();
        create(&conn, "Shared/Accounting").unwrap();
        create(&conn, "Archive").unwrap();
        let paths: Vec<_> = list(&conn).unwrap().into_iter().map(|f| (f.path, f.depth)).collect();
        let expected = [
            ("Archive", 0),
            ("Shared", 0),
            ("Shared/Accounting", 1),
            ("Shared/Finance", 1),
            ("Shared/Finance/EMEA", 2),
        ];
        assert_eq!(paths, expected.map(|(p, d)| (p.to_string(), d)));
    }

    #[test]
    fn sibling_names_are_unique_ignoring_case() {
        let (_dir, store) = store();
        let conn = store.conn();
        create(&conn, "Shared/Finance").unwrap();
        assert_eq!(create(&conn, "Shared/finance").unwrap_err().code(), "name_taken");
        create(&conn, "Shared/Café").unwrap();
        assert_eq!(create(&conn, "Shared/CAFÉ").unwrap_err().code(), "name_taken", "Unicode case");
        let lookalike = create(&conn, "Shared/Fin\u{430}nce").unwrap_err();
        assert_eq!(lookalike.to_string(), "folder 'Finance' already exists in folder 'Shared'; choose another name");
        assert_eq!(resolve(&conn, "shared/café").unwrap(), resolve(&conn, "Shared/Café").unwrap());
        create(&conn, "Finance").expect("same name elsewhere is fine");
        assert_eq!(rename(&conn, "Finance", "shared").unwrap_err().code(), "name_taken");
    }

    #[test]
    fn move_refuses_cycles_and_keeps_children() {
        let (_dir, store) = store();
        let conn = store.conn();
        create(&conn, "Shared/A").unwrap();
        create(&conn, "Shared/A/B").unwrap();
        assert_eq!(move_to(&conn, "Shared/A", Some("Shared/A/B")).unwrap_err().code(), "invalid_input");
        let moved = move_to(&conn, "Shared/A", None).unwrap();
        assert_eq!(moved.path, "A");
        assert!(resolve(&conn, "A/B").is_ok());
        assert_eq!(resolve(&conn, "Shared/A").unwrap_err().code(), "folder_not_found");
    }

    #[test]
    fn contents_count_everything_below() {
        let (_dir, store) = store();
        let conn = store.conn();
        create(&conn, "Shared/A").unwrap();
        create(&conn, "Shared/A/B").unwrap();
        let shared = resolve(&conn, "Shared").unwrap();
        let contents = contents(&conn, shared).unwrap();
        assert_eq!(contents, FolderContents { folders: 2, connections: 0, assets: 0 });
        assert_eq!(contents.to_string(), "2 sub-folders");
        let mixed = FolderContents { folders: 1, connections: 3, assets: 2 };
        assert_eq!(mixed.to_string(), "1 sub-folder, 3 connections and 2 credential assets");
    }
}
