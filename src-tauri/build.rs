fn main() {
    // An app manifest turns on the access-control list for Patchbay's own commands:
    // the window may call exactly those in permissions/app.toml.
    let attributes = tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new());
    tauri_build::try_build(attributes).expect("the Tauri configuration and capabilities are valid");
}
