//! Patchbay's window. A thin Tauri shell: each command parses its arguments, calls
//! `patchbay-core` and maps the error; no rule lives here.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;

use std::sync::{Arc, Once};

use patchbay_core::{Config, Patchbay};
use tauri::webview::PageLoadEvent;

fn main() {
    patchbay_core::process::keep_secrets_in_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PATCHBAY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // Same data folder, database and vault as the CLI (PATCHBAY_DATA_DIR or app data).
    let core = match Config::load(None).and_then(Patchbay::open) {
        Ok(core) => Arc::new(core),
        Err(err) => {
            eprintln!("Patchbay cannot start: {err} [{}]", err.code());
            std::process::exit(1);
        }
    };
    // Work a crash interrupted is finished once the page has loaded: never before the
    // window, and not competing with its first frame for the CPU.
    let background_started = Once::new();
    let result = tauri::Builder::default()
        .on_page_load({
            let core = Arc::clone(&core);
            move |_webview, page| {
                if page.event() == PageLoadEvent::Finished {
                    background_started.call_once(|| finish_interrupted_work(Arc::clone(&core)));
                }
            }
        })
        .manage(core)
        .manage(commands::PendingCalls::default())
        .invoke_handler(tauri::generate_handler![
            commands::list_folders,
            commands::create_folder,
            commands::rename_folder,
            commands::move_folder,
            commands::folder_contents,
            commands::delete_folder,
            commands::search_connectors,
            commands::list_assets,
            commands::create_asset,
            commands::delete_asset,
            commands::link_asset,
            commands::set_asset_destination,
            commands::folder_store,
            commands::set_folder_store,
            commands::list_stores,
            commands::add_store,
            commands::test_store,
            commands::remove_store,
            commands::list_connections,
            commands::get_connection,
            commands::add_connection,
            commands::update_connection,
            commands::cancel_call,
            commands::rotation_plan,
            commands::rotate_auth_token,
            commands::resume_rotations,
            commands::rotation_history,
            commands::test_connection,
            commands::delete_connection,
        ])
        .run(tauri::generate_context!());
    if let Err(err) = result {
        eprintln!("Patchbay's window failed: {err}");
        std::process::exit(1);
    }
}

fn finish_interrupted_work(core: Arc<Patchbay>) {
    tauri::async_runtime::spawn(async move {
        if let Err(err) = core.repair().await {
            eprintln!("interrupted changes could not be finished yet: {err} [{}]", err.code());
        }
        if let Err(err) = core.resume_rotations().await {
            eprintln!("an unfinished Auth Token rotation could not be resumed yet: {err} [{}]", err.code());
        }
    });
}
