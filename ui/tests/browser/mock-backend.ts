// An in-memory stand-in for patchbay-core behind the IPC, shaped by the generated types.
import type { Asset } from "../../src/lib/bindings/Asset";
import type { Connection } from "../../src/lib/bindings/Connection";
import type { ConnectionForm } from "../../src/lib/bindings/ConnectionForm";
import type { Connector } from "../../src/lib/bindings/Connector";
import type { CredentialStore } from "../../src/lib/bindings/CredentialStore";
import type { ErrorBody } from "../../src/lib/bindings/ErrorBody";
import type { Folder } from "../../src/lib/bindings/Folder";
import type { FolderStore } from "../../src/lib/bindings/FolderStore";
import type { RotationRecord } from "../../src/lib/bindings/RotationRecord";
import type { StoreForm } from "../../src/lib/bindings/StoreForm";
import httpDefinition from "../../../src-tauri/core/connectors/http.json";
import sendgridDefinition from "../../../src-tauri/core/connectors/sendgrid.json";
import slackDefinition from "../../../src-tauri/core/connectors/slack.json";
import twilioDefinition from "../../../src-tauri/core/connectors/twilio.json";

// Through unknown: JSON imports leave out what serde fills in (an empty `options`).
const catalog = [httpDefinition, slackDefinition, twilioDefinition, sendgridDefinition] as unknown as Connector[];
export const WRONG_TOKEN = "0".repeat(32);
export const UNOWNED_PHONE = "+15551230009";

function fail(code: string, message: string, field?: string, twilio_message?: string): never {
  throw { code, message, ...(field ? { field } : {}), ...(twilio_message ? { twilio_message } : {}) } satisfies ErrorBody;
}

export function createBackend() {
  let nextId = 1;
  const folders: { id: number; parent: number | null; name: string }[] = [{ id: nextId++, parent: null, name: "Shared" }];
  const assets: (Asset & { value: string })[] = [];
  const connections: Connection[] = [];
  const pending = new Map<string, () => void>();
  const rotations: RotationRecord[] = [];
  const stores: CredentialStore[] = [];
  /** Folder path → the store its new assets go to ("os" or a store's name). */
  const folderStores: Record<string, string> = {};
  const state = {
    connectDelayMs: 0,
    calls: [] as { command: string; args: Record<string, unknown> }[],
    contractViolations: [] as string[],
    /** While true, a rotation waits for `releaseRotation()`, so its progress can be seen. */
    holdRotations: false,
    /** While true, saving a secret answers as a locked keyring does. */
    vaultLocked: false,
    /** What new connections report about polling for their events. */
    eventsFailing: null as null | { code: string; message: string; at: string },
    releaseRotation: null as null | (() => void),
  };

  const pathOf = (id: number): string => {
    const folder = folders.find((f) => f.id === id)!;
    return folder.parent === null ? folder.name : `${pathOf(folder.parent)}/${folder.name}`;
  };
  const byPath = (path: string) => {
    const folder = folders.find((f) => pathOf(f.id) === path);
    return folder ?? fail("folder_not_found", `folder '${path}' does not exist`);
  };
  const listFolders = (): Folder[] => {
    const out: Folder[] = [];
    const walk = (parent: number | null, depth: number) =>
      folders
        .filter((f) => f.parent === parent)
        .sort((a, b) => a.name.localeCompare(b.name))
        .forEach((f) => {
          out.push({
            id: f.id,
            parent_id: f.parent,
            name: f.name,
            path: pathOf(f.id),
            depth,
            child_count: folders.filter((c) => c.parent === f.id).length,
            connection_count: connections.filter((c) => c.folder === pathOf(f.id)).length,
          });
          walk(f.id, depth + 1);
        });
    walk(null, 0);
    return out;
  };

  async function addConnection(requestId: string, folderPath: string, form: ConnectionForm): Promise<Connection> {
    const folder = pathOf(byPath(folderPath).id);
    const phone = String(form.values.phone_number ?? "").replace(/[\s\-.()]/g, "");
    // What each service would answer, and the name the core would give (connectors/*.rs).
    const [details, base]: [Record<string, string>, string] =
      form.connector === "slack"
        ? [{ workspace: "Acme Robots", bot_user: "patchbay", scopes: "chat:write" }, "Slack Acme Robots"]
        : form.connector === "http"
          ? [{ status: "200 OK" }, `HTTP ${new URL(String(form.values.base_url)).hostname}`]
          : form.connector === "sendgrid"
          ? [{ sender_status: "verified Single Sender", account_type: "paid" }, `Twilio SendGrid ${form.values.sender_email}`]
          : [
              form.values.test_credentials === true ? {} : { account_name: "Acme Operations", account_type: "Full" },
              `Twilio ${phone || form.values.account_sid}`,
            ];
    const taken = (name: string) => connections.some((c) => c.folder === folder && c.name.toLowerCase() === name.toLowerCase());
    // As the core: a chosen name must be free; the default one is numbered when taken.
    let name = (form.name as string | null) ?? base;
    if (form.name != null && taken(name))
      fail("name_taken", `connection '${name}' already exists in folder '${folder}'; choose another name`);
    for (let n = 2; taken(name); n++) name = `${base} (${n})`;
    const asset = form.secretAsset
      ? (assets.find((a) => a.name === form.secretAsset) ?? fail("asset_not_found", "no such asset", "auth_token"))
      : null;
    // As the core: an asset goes only where it may; its first use decides where that is.
    const destination = { connector: form.connector, origin: form.connector === "http" ? new URL(String(form.values.base_url)).origin : null };
    const allowed = (a: Asset) => a.destinations.some((d) => d.connector === destination.connector && d.origin === destination.origin);
    if (asset && asset.destinations.length > 0 && !allowed(asset))
      fail("asset_destination_refused", `credential asset '${asset.name}' (folder '${asset.folder}') may not be sent to ${destination.connector}`);
    const token = asset ? asset.value : String(form.secret);
    if (state.connectDelayMs) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, state.connectDelayMs);
        pending.set(requestId, () => {
          clearTimeout(timer);
          reject({ code: "cancelled", message: "Connect was cancelled; nothing was saved" });
        });
      });
      pending.delete(requestId);
    }
    if (state.vaultLocked)
      fail("vault_locked", "the OS vault did not answer within 5 s: it is probably locked; unlock your keyring (login keyring) and try again");
    if (token === WRONG_TOKEN)
      fail("twilio_auth_failed", "Twilio did not accept this Account SID and Auth Token (code 20003); copy both again from the Twilio Console (Account Info on the home page, or Account → API keys & tokens)", undefined, "Authenticate");
    if (phone === UNOWNED_PHONE)
      fail("twilio_phone_not_in_account", `${phone} is not registered in the Twilio account ${form.values.account_sid}; enter a number listed under Phone Numbers → Active numbers`, "phone_number");
    const now = new Date().toISOString();
    const connection: Connection = {
      id: crypto.randomUUID(),
      folder,
      connector: form.connector,
      auth_method: form.authMethod,
      name,
      fields: { ...form.values, ...(phone ? { phone_number: phone } : {}) },
      details,
      auth: form.secretAsset ? { kind: "asset", name: form.secretAsset, folder: "Shared" } : { kind: "own" },
      // As the core: its own Twilio Auth Token, not Test Credentials.
      rotatable: !form.secretAsset && form.authMethod === "auth_token" && form.values.test_credentials !== true,
      status: { state: "connected" },
      last_checked_at: now,
      created_at: now,
      updated_at: now,
      events_failing: state.eventsFailing,
    };
    connections.push(connection);
    if (asset && asset.destinations.length === 0) {
      asset.destinations.push(destination);
      return { ...connection, asset_first_use: destination };
    }
    return connection;
  }

  const handlers: Record<string, (args: Record<string, unknown>) => unknown> = {
    list_folders: () => listFolders(),
    create_folder: ({ path }) => {
      const parts = String(path).split("/");
      const name = parts.pop()!.trim();
      const parent = parts.length ? byPath(parts.join("/")).id : null;
      if (folders.some((f) => f.parent === parent && f.name.toLowerCase() === name.toLowerCase()))
        fail("name_taken", `folder '${name}' already exists; choose another name`, "name");
      folders.push({ id: nextId++, parent, name });
      return listFolders().find((f) => f.path === [...parts, name].join("/"));
    },
    rename_folder: ({ path, newName }) => {
      const folder = byPath(String(path));
      folder.name = String(newName).trim();
      return listFolders().find((f) => f.id === folder.id);
    },
    move_folder: ({ path, newParent }) => {
      const folder = byPath(String(path));
      folder.parent = newParent ? byPath(String(newParent)).id : null;
      return listFolders().find((f) => f.id === folder.id);
    },
    folder_contents: ({ path }) => {
      const root = pathOf(byPath(String(path)).id);
      const inside = (p: string) => p === root || p.startsWith(`${root}/`);
      return {
        folders: listFolders().filter((f) => f.path.startsWith(`${root}/`)).length,
        connections: connections.filter((c) => inside(c.folder)).length,
        assets: assets.filter((a) => inside(a.folder)).length,
      };
    },
    delete_folder: ({ path }) => {
      const folder = byPath(String(path));
      folders.splice(folders.indexOf(folder), 1);
      return { folders: 0, connections: 0, assets: 0 };
    },
    search_connectors: ({ query }) => {
      const q = String(query).toLowerCase();
      return catalog.filter((c) => !q || `${c.name} ${c.key} ${c.category} ${c.keywords.join(" ")} ${c.description}`.toLowerCase().includes(q));
    },
    list_assets: () =>
      assets.map(({ value: _value, ...asset }) => {
        const users = connections.filter((c) => c.auth.kind === "asset" && c.auth.name === asset.name);
        // As the core: rotatable when a user's auth method offers rotation (Twilio's Auth Token).
        return { ...asset, used_by: users.length, rotatable: users.some((c) => c.auth_method === "auth_token") };
      }),
    create_asset: ({ folder, name, value }) => {
      const asset = { id: crypto.randomUUID(), name: String(name), folder: String(folder), used_by: 0, rotatable: false, store: null, link: null, destinations: [], created_at: "", updated_at: "", value: String(value) };
      assets.push(asset);
      const { value: _value, ...shown } = asset;
      return shown;
    },
    list_stores: () => stores,
    add_store: ({ store }) => {
      const form = store as StoreForm;
      if (!/^https:\/\/|^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(form.address))
        fail("invalid_input", `the address '${form.address}' is refused: plain http only on this machine`, "address");
      const added: CredentialStore = {
        id: crypto.randomUUID(),
        name: form.name.trim(),
        kind: "vault",
        address: form.address.trim(),
        mount: form.mount ?? "secret",
        namespace: form.namespace,
        auth: form.roleId ? "approle" : "token",
        created_at: "",
      };
      stores.push(added);
      return added;
    },
    test_store: ({ name }) => ({ name: String(name), version: "2.7.2", policies: ["default", "patchbay"] }),
    remove_store: ({ name }) => {
      stores.splice(stores.findIndex((s) => s.name === name), 1);
      return null;
    },
    link_asset: ({ folder, name, store, path, key }) => {
      const asset = { id: crypto.randomUUID(), name: String(name), folder: String(folder), used_by: 0, rotatable: false, store: String(store), link: { path: String(path), key: String(key) }, destinations: [], created_at: "", updated_at: "", value: "" };
      assets.push(asset);
      const { value: _value, ...shown } = asset;
      return shown;
    },
    // As the core: the nearest folder that chose a store, itself first; else the OS vault.
    folder_store: ({ folder }): FolderStore => {
      const path = String(folder);
      const chooser = Object.keys(folderStores)
        .filter((chosen) => path === chosen || path.startsWith(`${chosen}/`))
        .sort((a, b) => b.length - a.length)[0];
      return { folder: path, store: chooser ? folderStores[chooser] : "os", chosen_in: chooser ?? null };
    },
    set_folder_store: ({ folder, store }) => {
      if (store === null) delete folderStores[String(folder)];
      else folderStores[String(folder)] = String(store);
      return handlers.folder_store({ folder });
    },
    set_asset_destination: ({ name, destination, allowed }) => {
      const asset = assets.find((a) => a.name === name) ?? fail("asset_not_found", `no credential asset '${name}'`);
      const [connector, ...rest] = String(destination).trim().split(":");
      if (!catalog.some((c) => c.key === connector)) fail("invalid_input", `no connector '${connector}' in the catalog`, "destination");
      const d = { connector, origin: rest.length ? new URL(rest.join(":")).origin : null };
      const at = asset.destinations.findIndex((x) => x.connector === d.connector && x.origin === d.origin);
      if (allowed && at < 0) asset.destinations.push(d);
      if (!allowed && at >= 0) asset.destinations.splice(at, 1);
      return (handlers.list_assets({}) as Asset[]).find((a) => a.id === asset.id)!;
    },
    delete_asset: ({ name }) => {
      assets.splice(assets.findIndex((a) => a.name === name), 1);
      return null;
    },
    list_connections: ({ folder, search, offset, limit }) => {
      const q = search ? String(search).toLowerCase() : "";
      const matching = connections
        .filter((c) => !folder || c.folder === folder)
        .filter((c) => !q || [c.name, ...Object.values(c.fields), ...Object.values(c.details)].join(" ").toLowerCase().includes(q))
        .sort((a, b) => a.name.localeCompare(b.name));
      return { total: matching.length, items: matching.slice(Number(offset), Number(offset) + Number(limit)) };
    },
    get_connection: ({ id }) => connections.find((c) => c.id === id) ?? fail("not_found", `no connection with id '${id}'`),
    add_connection: ({ requestId, folder, form }) => addConnection(String(requestId), String(folder), form as ConnectionForm),
    update_connection: ({ id, form }) => {
      const connection = connections.find((c) => c.id === id) ?? fail("not_found", `no connection with id '${id}'`);
      const changes = form as ConnectionForm;
      if (changes.secret === WRONG_TOKEN) fail("twilio_auth_failed", "Twilio did not accept this Account SID and Auth Token (code 20003)");
      Object.assign(connection, {
        name: changes.name ?? connection.name,
        fields: changes.values,
        auth: changes.secretAsset ? { kind: "asset", name: changes.secretAsset, folder: "Shared" } : changes.secret ? { kind: "own" } : connection.auth,
      });
      return connection;
    },
    cancel_call: ({ requestId }) => {
      pending.get(String(requestId))?.();
      return pending.delete(String(requestId));
    },
    rotation_plan: ({ subject }) => {
      const s = subject as { kind: string; name?: string; id?: string };
      const dependents = connections
        .filter((c) => (s.kind === "asset" ? c.auth.kind === "asset" && c.auth.name === s.name : c.id === s.id))
        .map((c) => ({ id: c.id, name: c.name, folder: c.folder, status: "connected" }));
      if (s.kind === "asset" && dependents.length === 0)
        fail("invalid_input", `no connection uses credential asset '${s.name}', so Patchbay cannot tell which Twilio account it belongs to`);
      return {
        account_sid: String(connections.find((c) => c.id === dependents[0]?.id)?.fields.account_sid ?? ""),
        subject: s.kind === "asset" ? `credential asset 'Shared/${s.name}'` : `connection '${dependents[0]?.name}'`,
        dependents,
        copies: 1,
        warning: "Anything outside Patchbay that still holds the old Auth Token (scripts, Functions, other tools) gets 401/403 from Twilio once the new token is promoted.",
      };
    },
    rotate_auth_token: async ({ requestId, subject }) => {
      const plan = handlers.rotation_plan({ subject }) as { account_sid: string; subject: string; dependents: RotationRecord["revalidated"] };
      if (state.holdRotations) {
        // As the core: a rotation stopped before promotion is cancelled and changes nothing.
        await new Promise<void>((resolve, reject) => {
          state.releaseRotation = resolve;
          pending.set(String(requestId), () =>
            reject({ code: "cancelled", message: "cancelled before promotion; the secondary token was deleted and nothing changed" }),
          );
        });
        pending.delete(String(requestId));
      }
      const record: RotationRecord = {
        id: crypto.randomUUID(),
        account_sid: plan.account_sid,
        subject: plan.subject,
        step: "done",
        outcome: `rotated; ${plan.dependents.length} of ${plan.dependents.length} dependent connections connected with the new token`,
        revalidated: plan.dependents,
        started_at: new Date().toISOString(),
        finished_at: new Date().toISOString(),
      };
      rotations.unshift(record);
      return record;
    },
    resume_rotations: () => [],
    rotation_history: () => rotations,
    test_connection: ({ id }) => connections.find((c) => c.id === id),
    delete_connection: ({ id }) => {
      connections.splice(connections.findIndex((c) => c.id === id), 1);
      return null;
    },
  };

  return {
    state,
    connections,
    handle(command: string, args: Record<string, unknown>) {
      state.calls.push({ command, args });
      const handler = handlers[command] ?? fail("unknown_command", command);
      return handler(args);
    },
  };
}
