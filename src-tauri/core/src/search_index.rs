//! Connection search: a case- and accent-insensitive substring match over name, phone,
//! Account SID and account name, fast on 100,000 connections.
//!
//! SQLite's trigram index slows down on the repetitive text connections have (every
//! phone starts `+1555`, every SID `AC`), so the folded texts are copied into one
//! buffer, in name order, and scanned with SIMD substring search. The copy is made on
//! the first search (never at start-up) and again only when `search_generation`, which
//! triggers bump on every change from any process, has moved.

use std::sync::Mutex;

use memchr::memmem::Finder;
use rusqlite::Connection as Db;

use crate::error::Result;

#[derive(Default)]
pub(crate) struct SearchIndex {
    snapshot: Mutex<Option<Snapshot>>,
}

struct Snapshot {
    generation: i64,
    /// Every active connection's folded text, in name order, each followed by `\n`.
    text: Vec<u8>,
    /// Where each row's text ends in `text` (the position of its `\n`).
    ends: Vec<usize>,
    seqs: Vec<i64>,
    folders: Vec<i64>,
}

/// The `seq`s of one page of matches, in name order, and how many match in all.
pub(crate) struct Matches {
    pub total: u32,
    pub page: Vec<i64>,
}

impl SearchIndex {
    pub fn search(&self, db: &Db, needle: &str, folder: Option<i64>, offset: usize, limit: usize) -> Result<Matches> {
        let generation: i64 = db.query_row("SELECT value FROM search_generation", [], |row| row.get(0))?;
        let mut guard = self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.as_ref().is_none_or(|snapshot| snapshot.generation != generation) {
            *guard = Some(Snapshot::load(db, generation)?);
        }
        Ok(guard.as_ref().expect("loaded above").matches(needle, folder, offset, limit))
    }
}

impl Snapshot {
    fn load(db: &Db, generation: i64) -> Result<Self> {
        let mut statement = db.prepare(
            "SELECT seq, folder_id, search_text FROM connections INDEXED BY connections_by_name
                 WHERE lifecycle = 'active' ORDER BY name COLLATE NOCASE, id",
        )?;
        let mut rows = statement.query([])?;
        let mut snapshot =
            Snapshot { generation, text: Vec::new(), ends: Vec::new(), seqs: Vec::new(), folders: Vec::new() };
        while let Some(row) = rows.next()? {
            let text = row.get_ref(2)?.as_bytes().map_err(rusqlite::Error::from)?;
            // A row's text never holds the separator, so no match spans two rows.
            snapshot.text.extend(text.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
            snapshot.ends.push(snapshot.text.len());
            snapshot.text.push(b'\n');
            snapshot.seqs.push(row.get(0)?);
            snapshot.folders.push(row.get(1)?);
        }
        Ok(snapshot)
    }

    fn matches(&self, needle: &str, folder: Option<i64>, offset: usize, limit: usize) -> Matches {
        if needle.contains('\n') {
            return Matches { total: 0, page: Vec::new() };
        }
        let finder = Finder::new(needle.as_bytes());
        let mut total = 0_u32;
        let mut page = Vec::new();
        // Matches come in text order, so the row cursor only moves forward.
        let mut row = 0;
        let mut next_row_start = 0;
        for found in finder.find_iter(&self.text) {
            if found < next_row_start {
                continue; // a second match in a row already counted
            }
            while self.ends[row] < found {
                row += 1;
            }
            next_row_start = self.ends[row] + 1;
            if folder.is_some_and(|folder| folder != self.folders[row]) {
                continue;
            }
            if total as usize >= offset && page.len() < limit {
                page.push(self.seqs[row]);
            }
            total += 1;
        }
        Matches { total, page }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(rows: &[(&str, i64)]) -> Snapshot {
        let mut snapshot =
            Snapshot { generation: 0, text: Vec::new(), ends: Vec::new(), seqs: Vec::new(), folders: Vec::new() };
        for (seq, (text, folder)) in rows.iter().enumerate() {
            snapshot.text.extend_from_slice(text.as_bytes());
            snapshot.ends.push(snapshot.text.len());
            snapshot.text.push(b'\n');
            snapshot.seqs.push(seq as i64);
            snapshot.folders.push(*folder);
        }
        snapshot
    }

    #[test]
    fn each_row_counts_once_and_pages_in_order() {
        let index = snapshot(&[("alerts alerts", 1), ("invoices", 1), ("alerts", 2), ("more alerts", 1)]);
        let all = index.matches("alerts", None, 0, 10);
        assert_eq!((all.total, all.page), (3, vec![0, 2, 3]));
        let second_page = index.matches("alerts", None, 1, 1);
        assert_eq!((second_page.total, second_page.page), (3, vec![2]));
        let in_folder = index.matches("alerts", Some(1), 0, 10);
        assert_eq!((in_folder.total, in_folder.page), (2, vec![0, 3]));
    }

    #[test]
    fn no_match_spans_two_rows() {
        let index = snapshot(&[("abc", 1), ("def", 1)]);
        assert_eq!(index.matches("c\nd", None, 0, 10).total, 0);
        assert_eq!(index.matches("cd", None, 0, 10).total, 0);
    }
}
