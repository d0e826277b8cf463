//! `cargo run --release -p patchbay-core --example seed -- DATA_DIR [FOLDERS] [CONNECTIONS]`:
//! fills a data folder with a big store (default 10,000 folders, 100,000 connections)
//! for speed measurements of the window and the CLI.

use patchbay_core::{Config, fixtures};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: seed DATA_DIR [FOLDERS] [CONNECTIONS]");
        std::process::exit(2);
    };
    let mut number = |default: usize| args.next().map_or(default, |n| n.parse().expect("a whole number"));
    let (folders, connections) = (number(10_000), number(100_000));
    let config = Config::load(Some(dir.into())).expect("a usable data folder");
    let seeded = fixtures::seed(&config.database_path(), folders, connections).expect("the store accepts the fixture");
    println!(
        "seeded {} folders and {} connections into {}",
        seeded.folder_paths.len(),
        seeded.connections,
        config.database_path().display()
    );
}
