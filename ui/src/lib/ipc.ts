// The one module that talks to the Rust side: nothing else imports @tauri-apps/*.
import { invoke } from "@tauri-apps/api/core";
import type { Asset } from "./bindings/Asset";
import type { Connection } from "./bindings/Connection";
import type { ConnectionForm } from "./bindings/ConnectionForm";
import type { ConnectionPage } from "./bindings/ConnectionPage";
import type { Connector } from "./bindings/Connector";
import type { CredentialStore } from "./bindings/CredentialStore";
import type { ErrorBody } from "./bindings/ErrorBody";
import type { Folder } from "./bindings/Folder";
import type { FolderContents } from "./bindings/FolderContents";
import type { FolderStore } from "./bindings/FolderStore";
import type { RotationPlan } from "./bindings/RotationPlan";
import type { RotationRecord } from "./bindings/RotationRecord";
import type { RotationSubject } from "./bindings/RotationSubject";
import type { StoreCheck } from "./bindings/StoreCheck";
import type { StoreForm } from "./bindings/StoreForm";

export type { Asset, Connection, ConnectionForm, ConnectionPage, Connector, ErrorBody, Folder, FolderContents };
export type { RotationPlan, RotationRecord, RotationSubject };
export type { CredentialStore, FolderStore, StoreCheck, StoreForm };

/** Every failed call rejects with an ErrorBody; anything else becomes one. */
async function invokeOnce<T>(command: string, args: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (err) {
    if (isErrorBody(err)) throw err;
    throw { code: "ipc_failed", message: String(err) } satisfies ErrorBody;
  }
}

/** Who shows that the OS vault is locked (App.svelte): told true while Patchbay waits. */
let vaultLockedListener: (locked: boolean) => void = () => {};
export function onVaultLocked(listener: (locked: boolean) => void) {
  vaultLockedListener = listener;
}

export const VAULT_RETRY_MS = 3000;
const VAULT_RETRIES = 20;
/** A rotation is resumed, never started twice: it is not retried behind the user's back. */
const NOT_RETRIED = new Set(["rotate_auth_token"]);

/**
 * A locked keyring answers `vault_locked` and leaves nothing half-done, so the call is
 * repeated every few seconds (for about a minute) while the window asks the person to
 * unlock it.
 */
async function call<T>(command: string, args: Record<string, unknown> = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await invokeOnce<T>(command, args);
      if (attempt > 1) vaultLockedListener(false);
      return answer;
    } catch (err) {
      const locked = isErrorBody(err) && err.code === "vault_locked";
      if (!locked || NOT_RETRIED.has(command) || attempt > VAULT_RETRIES) {
        if (attempt > 1) vaultLockedListener(false);
        throw err;
      }
      vaultLockedListener(true);
      await new Promise((resolve) => setTimeout(resolve, VAULT_RETRY_MS));
    }
  }
}

export const api = {
  listFolders: () => call<Folder[]>("list_folders"),
  createFolder: (path: string) => call<Folder>("create_folder", { path }),
  renameFolder: (path: string, newName: string) => call<Folder>("rename_folder", { path, newName }),
  moveFolder: (path: string, newParent: string | null) => call<Folder>("move_folder", { path, newParent }),
  folderContents: (path: string) => call<FolderContents>("folder_contents", { path }),
  deleteFolder: (path: string, recursive: boolean) => call<FolderContents>("delete_folder", { path, recursive }),
  searchConnectors: (query: string) => call<Connector[]>("search_connectors", { query }),
  listAssets: (folder: string) => call<Asset[]>("list_assets", { folder }),
  /** `store`: a credential store's name, "os" for the OS vault, null for the folder's store. */
  createAsset: (folder: string, name: string, value: string, store: string | null) =>
    call<Asset>("create_asset", { folder, name, value, store }),
  linkAsset: (folder: string, name: string, store: string, path: string, key: string) =>
    call<Asset>("link_asset", { folder, name, store, path, key }),
  /** `destination`: "twilio", "http:https://host"…; `allowed` false takes it away. */
  setAssetDestination: (folder: string, name: string, destination: string, allowed: boolean) =>
    call<Asset>("set_asset_destination", { folder, name, destination, allowed }),
  folderStore: (folder: string) => call<FolderStore>("folder_store", { folder }),
  /** `store`: a credential store's name, "os", or null to go as the parent folder. */
  setFolderStore: (folder: string, store: string | null) => call<FolderStore>("set_folder_store", { folder, store }),
  listStores: () => call<CredentialStore[]>("list_stores"),
  addStore: (store: StoreForm) => call<CredentialStore>("add_store", { store }),
  testStore: (name: string) => call<StoreCheck>("test_store", { name }),
  removeStore: (name: string) => call<null>("remove_store", { name }),
  deleteAsset: (folder: string, name: string, force: boolean) => call<null>("delete_asset", { folder, name, force }),
  listConnections: (folder: string | null, search: string | null, offset: number, limit: number) =>
    call<ConnectionPage>("list_connections", { folder, search, offset, limit }),
  getConnection: (id: string) => call<Connection>("get_connection", { id }),
  addConnection: (requestId: string, folder: string, form: ConnectionForm) =>
    call<Connection>("add_connection", { requestId, folder, form }),
  updateConnection: (requestId: string, id: string, form: ConnectionForm) =>
    call<Connection>("update_connection", { requestId, id, form }),
  /** Stops a Connect or a rotation started with this request id. */
  cancelCall: (requestId: string) => call<boolean>("cancel_call", { requestId }),
  rotationPlan: (subject: RotationSubject) => call<RotationPlan>("rotation_plan", { subject }),
  rotateAuthToken: (requestId: string, subject: RotationSubject) =>
    call<RotationRecord>("rotate_auth_token", { requestId, subject }),
  resumeRotations: () => call<RotationRecord[]>("resume_rotations"),
  rotationHistory: () => call<RotationRecord[]>("rotation_history"),
  testConnection: (id: string) => call<Connection>("test_connection", { id }),
  deleteConnection: (id: string) => call<null>("delete_connection", { id }),
};

export function isErrorBody(value: unknown): value is ErrorBody {
  return !!value && typeof value === "object" && "code" in value && "message" in value;
}
