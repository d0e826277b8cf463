//! `patchbay`: Patchbay's core, headless. Each subcommand parses its arguments, makes
//! one core call and prints the answer; no rule lives here.
//!
//! Secrets are never taken as arguments (process lists and shell history would keep
//! them): they come from standard input.

mod output;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use patchbay_core::credential_stores::{NewStore, StoreCredentials};
use patchbay_core::rotation::RotationSubject;
use patchbay_core::{
    Config, ConnectionQuery, Error, FieldValue, FieldValues, NewConnection, Patchbay, Secret, SecretSource, catalog,
};

use output::Output;

#[derive(Parser)]
#[command(
    name = "patchbay",
    version,
    about = "Patchbay: folders and connections (Twilio, SendGrid, Slack, HTTP), secrets in the OS vault"
)]
struct Cli {
    /// Data folder (default: the platform's app-data folder; or PATCHBAY_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Machine output: JSON on stdout, errors as JSON on stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, rename, move and delete folders (named by path, e.g. Shared/Finance).
    #[command(subcommand)]
    Folder(FolderCommand),
    /// List the connector catalog.
    Connectors {
        /// Only connectors matching this text (name, key, category, keywords, description).
        #[arg(long)]
        search: Option<String>,
    },
    /// Credential assets: named secrets kept in the OS vault or a credential store.
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Add, list, show, test and delete connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Serve the provisioning HTTP API (POST /instances …) until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on; loopback unless --allow-remote (with TLS).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Allow a non-loopback address; requires --tls-cert and --tls-key.
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        allow_remote: bool,
        /// PEM certificate chain for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// The HTTP API's own settings.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Rotate Twilio Auth Tokens and see past rotations.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Credential stores beyond the OS vault: HashiCorp Vault or OpenBao, KV version 2.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Register a store after checking it (reachable, unsealed, signed in, KV v2 mount).
    Add(StoreArgs),
    /// The registered stores (never their credentials).
    List,
    /// Check a store again with the credentials kept for it.
    Test { name: String },
    /// Forget a store and its credentials (what it holds stays where it is).
    Remove { name: String },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("sign_in").required(true).args(["token_stdin", "approle_role_id"])))]
struct StoreArgs {
    name: String,
    /// The store's address, e.g. https://vault.example.com:8200 (http only on loopback).
    #[arg(long)]
    address: String,
    /// The KV v2 mount (default: secret).
    #[arg(long)]
    mount: Option<String>,
    /// The namespace (Vault Enterprise, OpenBao namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Sign in with a token, read from standard input.
    #[arg(long)]
    token_stdin: bool,
    /// Sign in with AppRole: its role ID; the secret ID is read from standard input.
    #[arg(long, value_name = "ROLE_ID")]
    approle_role_id: Option<String>,
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Rotate an Auth Token (secondary → validate → promote → store), updating every
    /// connection that depends on it.
    Rotate(RotateArgs),
    /// Past rotations: start, end, outcome, connections re-validated.
    History,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["asset", "connection", "resume", "cancel"])))]
struct RotateArgs {
    /// The credential asset holding the token (with --folder).
    #[arg(long, requires = "folder")]
    asset: Option<String>,
    #[arg(long)]
    folder: Option<String>,
    /// A connection that holds its own token.
    #[arg(long, conflicts_with = "asset")]
    connection: Option<String>,
    /// Go ahead without asking (after reading the plan).
    #[arg(long)]
    yes: bool,
    /// Finish rotations a crash or a timeout left unfinished.
    #[arg(long, conflicts_with_all = ["asset", "connection", "cancel"])]
    resume: bool,
    /// Cancel unfinished rotations that have not promoted yet.
    #[arg(long, conflicts_with_all = ["asset", "connection"])]
    cancel: bool,
    /// Also write the new token into a credential store's secret that the asset is
    /// linked to (with check-and-set); without it, such an asset is refused.
    #[arg(long, requires = "asset")]
    write_linked: bool,
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Print the User and Organization secrets of the API's Authorization header
    /// (made on first use, kept in the OS vault).
    Credentials {
        /// Replace both secrets; callers using the old ones get 401 from then on.
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Subcommand)]
enum FolderCommand {
    /// Create a folder; its parent must exist.
    Create { path: String },
    /// The folder tree.
    List,
    /// Rename the folder at PATH.
    Rename { path: String, new_name: String },
    /// Move the folder at PATH under another folder, or to the top level.
    Move {
        path: String,
        #[arg(long, value_name = "PARENT", required_unless_present = "top_level", conflicts_with = "top_level")]
        to: Option<String>,
        #[arg(long)]
        top_level: bool,
    },
    /// Where the folder's new credential assets are kept; with --set or --inherit, choose.
    Store {
        path: String,
        /// A credential store's name (patchbay store list), or `os` for the OS vault.
        #[arg(long, value_name = "STORE", conflicts_with = "inherit")]
        set: Option<String>,
        /// Keep them where the parent folder's go.
        #[arg(long)]
        inherit: bool,
    },
    /// Delete a folder; one that holds anything only with --recursive.
    Delete {
        path: String,
        /// Also delete its sub-folders, connections and credential assets (with their secrets).
        #[arg(long)]
        recursive: bool,
    },
}

#[derive(Subcommand)]
enum AssetCommand {
    /// Create a credential asset; its value is read from standard input.
    Create {
        name: String,
        #[arg(long)]
        folder: String,
        /// Keep the value in this credential store (`os`: the OS vault); by default
        /// where the folder's assets go (patchbay folder store).
        #[arg(long)]
        store: Option<String>,
    },
    /// Link a credential asset to a key of a secret in a credential store: its value is
    /// read there each time it is used, so a rotation done in the store reaches every
    /// connection.
    Link {
        name: String,
        #[arg(long)]
        folder: String,
        /// The credential store (patchbay store list).
        #[arg(long)]
        store: String,
        /// The secret's path under the store's KV v2 mount, e.g. twilio/prod.
        #[arg(long)]
        path: String,
        /// The key inside the secret, e.g. auth_token.
        #[arg(long)]
        key: String,
    },
    /// List credential assets (never their values); with --folder, those visible from it.
    List {
        #[arg(long)]
        folder: Option<String>,
    },
    /// Let a credential asset's value go to a destination as well: a connector
    /// (`twilio`, `slack`, `sendgrid`) or, for the HTTP connector, one origin
    /// (`http:https://api.example.com`). Only these destinations receive it.
    Allow {
        name: String,
        #[arg(long)]
        folder: String,
        /// The destination, e.g. twilio or http:https://api.example.com:8443.
        #[arg(long)]
        to: String,
        /// Take the destination away instead.
        #[arg(long)]
        remove: bool,
    },
    /// Delete a credential asset and its secret.
    Delete {
        name: String,
        #[arg(long)]
        folder: String,
        /// Delete it even though connections use it (they will fail until fixed).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Add connection: validate with the connector's service, then save.
    Add(Box<AddArgs>),
    /// List connections, by name.
    List {
        /// Only this folder's connections.
        #[arg(long)]
        folder: Option<String>,
        /// Only connections whose name, a field (phone, Account SID, sender …) or what the service said (account, workspace …) contains this.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// Show one connection.
    Show { id: String },
    /// Test connection: validate again and record the result.
    Test { id: String },
    /// Delete a connection and its own secret.
    Delete { id: String },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("secret").args(["secret_stdin", "secret_asset", "auth_token_stdin", "auth_token_asset"])))]
struct AddArgs {
    /// The connector's key in the catalog (`patchbay connectors`), e.g. twilio.
    connector: String,
    #[arg(long)]
    folder: String,
    /// Connection name (default: the connector's, e.g. "Twilio <phone number>").
    #[arg(long)]
    name: Option<String>,
    /// One of the connector's auth methods (default: its recommended one).
    #[arg(long, value_name = "KEY")]
    auth_method: Option<String>,
    /// A field's value, by the field's name in the connector's definition; repeatable.
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = name_value)]
    fields: Vec<(String, String)>,
    /// Read the secret field NAME from standard input.
    #[arg(long, value_name = "NAME")]
    secret_stdin: Option<String>,
    /// Use a credential asset (visible from the folder) as the secret field NAME.
    #[arg(long, value_name = "NAME=ASSET", value_parser = name_value)]
    secret_asset: Option<(String, String)>,
    #[command(flatten)]
    twilio: TwilioShorthands,
}

/// Today's Twilio flags, kept as shorthands for the fields they set.
#[derive(Args)]
struct TwilioShorthands {
    /// Twilio: the phone number registered in the account, e.g. +15551230001 (without
    /// it the connection is account-level). Same as --field phone_number=…
    #[arg(long = "phone")]
    phone: Option<String>,
    /// Twilio: AC followed by 32 hexadecimal digits. Same as --field account_sid=…
    #[arg(long)]
    account_sid: Option<String>,
    /// Twilio: the SID and token are Test Credentials. Same as --field test_credentials=true
    #[arg(long)]
    test_credentials: bool,
    /// Twilio: read the Auth Token from standard input. Same as --secret-stdin auth_token
    #[arg(long)]
    auth_token_stdin: bool,
    /// Twilio: use this credential asset as the Auth Token. Same as --secret-asset auth_token=NAME
    #[arg(long, value_name = "NAME")]
    auth_token_asset: Option<String>,
}

fn name_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("'{raw}' is not NAME=VALUE"))
}

impl AddArgs {
    /// The core's request: the fields, and the secret read from stdin or named by asset.
    fn into_new_connection(self) -> Result<NewConnection, Error> {
        let mut values = FieldValues::new();
        let shorthands = [("phone_number", self.twilio.phone), ("account_sid", self.twilio.account_sid)];
        for (name, value) in
            self.fields.into_iter().chain(shorthands.into_iter().filter_map(|(n, v)| Some((n.to_owned(), v?))))
        {
            values.insert(name, FieldValue::Text(value));
        }
        if self.twilio.test_credentials {
            values.insert("test_credentials".into(), FieldValue::Toggle(true));
        }
        let stdin = self.secret_stdin.or(self.twilio.auth_token_stdin.then(|| "auth_token".to_owned()));
        let asset = self.secret_asset.or(self.twilio.auth_token_asset.map(|name| ("auth_token".to_owned(), name)));
        let method = catalog::require(&self.connector)?.auth_method_or_default(self.auth_method.as_deref())?;
        let secret = match (method.secret_field(), stdin, asset) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(Error::invalid("secret", format!("{} takes no secret", method.label)));
            }
            (Some(field), stdin, asset) => {
                let named = stdin.as_deref().or(asset.as_ref().map(|(name, _)| name.as_str()));
                if named.is_some_and(|name| name != field.name) {
                    return Err(Error::invalid(
                        "secret",
                        format!("{}'s secret field is '{}'", method.label, field.name),
                    ));
                }
                match asset {
                    Some((_, asset)) => Some(SecretSource::Asset(asset)),
                    None => Some(SecretSource::Value(read_secret(&field.label)?)),
                }
            }
        };
        Ok(NewConnection {
            folder: self.folder,
            connector: self.connector,
            auth_method: self.auth_method,
            name: self.name,
            values,
            secret,
        })
    }
}

fn main() -> ExitCode {
    patchbay_core::process::keep_secrets_in_memory();
    let json_requested = std::env::args().any(|arg| arg == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if json_requested && err.use_stderr() => {
            let message = err.render().to_string();
            let first_line = message.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            Output { json: true }.error(&Error::invalid("arguments", first_line));
            return ExitCode::from(2);
        }
        Err(err) => err.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PATCHBAY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::FAILURE
        }
    };
    // A vault call given up on (a keyring that never answers) still waits on its blocking
    // thread, and dropping the runtime would wait for it: the answer is out, so exit now.
    runtime.shutdown_background();
    code
}

async fn run(cli: Cli, out: &Output) -> Result<(), Error> {
    let config = Config::load(cli.data_dir)?;
    // serve's callers are not the person at this desk: the API adapter says so to the core.
    let core = Patchbay::open(match cli.command {
        Command::Serve { .. } => patchbay_api::served(config),
        _ => config,
    })?;
    // Finishes what processes that died midway left (never a live process's work).
    if let Err(err) = core.repair().await {
        tracing::warn!(code = err.code(), "could not finish interrupted changes yet: {err}");
    }
    match cli.command {
        Command::Serve { listen, allow_remote, tls_cert, tls_key } => {
            let options = patchbay_api::ServeOptions { listen, allow_remote, tls: tls_cert.zip(tls_key) };
            let json = out.json;
            let served = patchbay_api::serve(std::sync::Arc::new(core), options, |address| {
                // The first line scripts (and tests) wait for.
                if json {
                    println!("{}", serde_json::json!({ "listening": address.to_string() }));
                } else {
                    println!("Patchbay API listening on http://{address} (SIGINT or SIGTERM stops it)");
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await;
            return served.map_err(|err| match err {
                patchbay_api::ServeError::Core(err) => err,
                other => Error::invalid("listen", other.to_string()),
            });
        }
        Command::Credential(CredentialCommand::History) => out.rotations(&core.rotation_history()?),
        Command::Credential(CredentialCommand::Rotate(args)) => {
            if args.resume {
                out.rotations(&core.resume_rotations().await?);
                return Ok(());
            }
            if args.cancel {
                out.rotations(&core.cancel_rotations().await?);
                return Ok(());
            }
            let subject = match (args.asset, args.folder, args.connection) {
                (Some(name), Some(folder), _) => {
                    RotationSubject::Asset { folder, name, write_linked: args.write_linked }
                }
                (_, _, Some(id)) => RotationSubject::Connection { id },
                _ => return Err(Error::invalid("arguments", "name --asset NAME --folder PATH, or --connection ID")),
            };
            let plan = core.plan_rotation(&subject).await?;
            if !args.yes {
                out.rotation_plan(&plan);
                if !confirm("Rotate this Auth Token now?") {
                    return Err(Error::invalid("yes", "not rotated: confirm with --yes after reading the plan"));
                }
            }
            out.rotations(&[rotate_until_interrupted(&core, &subject).await?]);
        }
        Command::Store(command) => match command {
            StoreCommand::Add(args) => {
                let credentials = match args.approle_role_id {
                    Some(role_id) => {
                        StoreCredentials::AppRole { role_id, secret_id: read_secret("AppRole secret ID")? }
                    }
                    None => StoreCredentials::Token(read_secret("token")?),
                };
                let new = NewStore {
                    name: args.name,
                    address: args.address,
                    mount: args.mount,
                    namespace: args.namespace,
                    credentials,
                };
                out.credential_store(&core.add_store(new).await?)
            }
            StoreCommand::List => out.credential_stores(&core.list_stores()?),
            StoreCommand::Test { name } => out.store_check(&core.test_store(&name).await?),
            StoreCommand::Remove { name } => {
                core.remove_store(&name).await?;
                out.done(&format!("removed credential store '{name}'"))
            }
        },
        Command::Api(ApiCommand::Credentials { rotate }) => {
            let credentials = core.api_credentials(rotate).await?;
            let (user, organization) = (credentials.user.reveal_to_owner(), credentials.organization.reveal_to_owner());
            out.credentials(user, organization);
        }
        Command::Folder(command) => match command {
            FolderCommand::Create { path } => out.folder(&core.create_folder(&path)?),
            FolderCommand::List => out.folders(&core.list_folders()?),
            FolderCommand::Rename { path, new_name } => out.folder(&core.rename_folder(&path, &new_name)?),
            FolderCommand::Move { path, to, .. } => out.folder(&core.move_folder(&path, to.as_deref())?),
            FolderCommand::Store { path, set, inherit } => out.folder_store(&match (set, inherit) {
                (None, false) => core.folder_store(&path)?,
                (set, _) => core.set_folder_store(&path, set.as_deref())?,
            }),
            FolderCommand::Delete { path, recursive } => {
                out.deleted_folder(&path, &core.delete_folder(&path, recursive).await?)
            }
        },
        Command::Connectors { search } => out.connectors(&core.connectors(search.as_deref().unwrap_or(""))),
        Command::Asset(command) => match command {
            AssetCommand::Create { name, folder, store } => {
                let value = read_secret(&format!("Value of credential asset '{name}'"))?;
                out.asset(&core.create_asset(&folder, &name, value, store.as_deref()).await?)
            }
            AssetCommand::Link { name, folder, store, path, key } => {
                out.asset(&core.link_asset(&folder, &name, &store, &path, &key).await?)
            }
            AssetCommand::List { folder } => out.assets(&core.list_assets(folder.as_deref())?),
            AssetCommand::Allow { name, folder, to, remove } => {
                out.asset_destinations(&core.set_asset_destination(&folder, &name, &to, !remove)?)
            }
            AssetCommand::Delete { name, folder, force } => {
                core.delete_asset(&folder, &name, force).await?;
                out.done(&format!("deleted credential asset '{name}' from '{folder}'"))
            }
        },
        Command::Connection(command) => match command {
            ConnectionCommand::Add(args) => out.connection(&core.add_connection(args.into_new_connection()?).await?),
            ConnectionCommand::List { folder, search, limit, offset } => {
                out.connections(&core.list_connections(&ConnectionQuery { folder, search, limit, offset })?)
            }
            ConnectionCommand::Show { id } => out.connection(&core.connection(&id)?),
            ConnectionCommand::Test { id } => out.connection(&core.test_connection(&id).await?),
            ConnectionCommand::Delete { id } => {
                core.delete_connection(&id).await?;
                out.done(&format!("deleted connection {id}"))
            }
        },
    }
    Ok(())
}

/// Rotates; Ctrl-C or SIGTERM is Cancel. Before promotion the secondary token this
/// rotation made is deleted and nothing changes; after it, the new token is live at
/// Twilio, so the rotation goes on until it is stored everywhere (a second signal stops
/// the process, and `--resume` finishes).
async fn rotate_until_interrupted(
    core: &Patchbay,
    subject: &RotationSubject,
) -> Result<patchbay_core::rotation::RotationRecord, Error> {
    let id = core.start_rotation(subject).await?;
    tokio::select! {
        finished = core.run_rotation(&id) => return finished,
        () = patchbay_core::process::interrupted() => {}
    }
    match core.cancel_rotation(&id).await {
        Err(Error::RotationPromoted) => {
            eprintln!(
                "interrupted after promotion: the new Auth Token is live at Twilio; storing it everywhere first (interrupt again to stop; `patchbay credential rotate --resume` then finishes)"
            );
            tokio::select! {
                finished = core.run_rotation(&id) => finished,
                () = patchbay_core::process::interrupted() => Err(Error::RotationPromoted),
            }
        }
        Ok(cancelled) => Err(Error::Cancelled(format!(
            "rotation interrupted and cancelled: {}",
            cancelled.outcome.unwrap_or_default()
        ))),
        Err(err) => Err(err),
    }
}

/// Asks at a terminal; never assumes yes when nobody can answer.
fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// A secret from standard input: typed without echo at a terminal, or piped.
fn read_secret(prompt: &str) -> Result<Secret, Error> {
    let secret = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{prompt} (input hidden): ")).map(Secret::new)
    } else {
        Secret::from_reader(std::io::stdin().lock())
    }
    .map_err(|err| Error::invalid("stdin", format!("cannot read the {prompt} from standard input: {err}")))?;
    if secret.is_empty() {
        return Err(Error::invalid("stdin", format!("the {prompt} is empty; pipe it on standard input")));
    }
    Ok(secret)
}
