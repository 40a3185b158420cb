// The deployment's permission catalogue (DESIGN.md §1: KEYWARD_PERMISSION_CATEGORIES), read
// from the server once per session with DirectoryService.GetPermissionCatalogue — which any
// signed-in credential may call — and shared by the API keys and OIDC tabs. The console keeps
// no list of its own: what it offers is what the server will accept.
import { useEffect, useState } from "preact/hooks";
import type { Session } from "./session.ts";

/** One request per session (a failed one is forgotten, so the next use asks again). */
const loads = new WeakMap<Session, Promise<readonly string[]>>();

/**
 * The permission categories of `session`'s deployment, in the server's order. Rejects with
 * the call's ConnectError (a 401 signs out through the session's interceptor).
 */
export function permissionCatalogue(session: Session): Promise<readonly string[]> {
  let load = loads.get(session);
  if (load === undefined) {
    load = session.api.directory
      .getPermissionCatalogue({ name: `tenants/${session.tenant}/permissionCatalogue` })
      .then((res) => Object.freeze([...(res.catalogue?.categories ?? [])]));
    load.catch(() => loads.delete(session));
    loads.set(session, load);
  }
  return load;
}

/** The catalogue's state in a component: loading (undefined), loaded, or the call's error. */
export type CatalogueState = undefined | { categories: readonly string[] } | { error: unknown };

/** Hook: `permissionCatalogue(session)` as component state. */
export function usePermissionCatalogue(session: Session): CatalogueState {
  const [state, setState] = useState<CatalogueState>(undefined);
  useEffect(() => {
    let live = true;
    permissionCatalogue(session).then(
      (categories) => live && setState({ categories }),
      (error: unknown) => live && setState({ error }),
    );
    return () => { live = false; };
  }, [session]);
  return state;
}
