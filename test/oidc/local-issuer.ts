// A local OIDC issuer on 127.0.0.1 standing in for GitHub Actions' (issue 11): OpenID Connect
// discovery and a JWKS of keys made with jose, rotating on demand, issuing ID tokens with
// GitHub Actions' real claim set, and able to be down, slow or oversized. It also offers a
// stand-in for the Actions token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN) and builders
// of the classic attacks (alg none, HS256 keyed with the public key, tampered, truncated).
//
//   const idp = await startLocalIssuer({ clock });
//   const token = await idp.token({ environment: "staging" }, { audience: "acme.keyward.test" });
//   ... verify with issuers: [idp.issuer] ...
//   await idp.close();
import { createHash, createHmac, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url, CompactSign, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { systemClock, type Clock } from "../../src/clock.ts";

/**
 * How the issuer's discovery and JWKS endpoints behave (`on` picks which of them: "all",
 * the default, or only "jwks"; the Actions endpoint always answers):
 * - ok: answer normally;
 * - down: `how` "close" (default) destroys each connection unanswered, "503" answers 503;
 * - slow: answer after `delayMs`;
 * - huge: answer 200 with `bytes` (default 10 MB) of junk, streamed in chunks; with
 *   `declareLength` a Content-Length header announces it, otherwise it is chunked.
 */
export type IssuerMode =
  | { kind: "ok" }
  | { kind: "down"; how?: "close" | "503"; on?: "all" | "jwks" }
  | { kind: "slow"; delayMs: number; on?: "all" | "jwks" }
  | { kind: "huge"; bytes?: number; declareLength?: boolean; on?: "all" | "jwks" };

/** Key types the issuer can sign with. */
export type IssuerKeyAlg = "RS256" | "ES256" | "EdDSA";

/**
 * Claim changes for `token`/`claims`: a value replaces the claim, `undefined` deletes it
 * (e.g. `{ jti: undefined }`), a new name adds one.
 */
export type ClaimOverrides = Record<string, unknown>;

/** How `token` signs. */
export type TokenOptions = {
  /** `aud`: a string or an array. Default "keyward.test". */
  audience?: string | readonly string[];
  /** `iat` in seconds since the epoch; default the issuer's clock. `nbf` = iat − 600, `exp` = iat + lifetime. */
  iat?: number;
  /** `exp` − `iat`, in seconds. Default 300 (GitHub's). */
  lifetimeSeconds?: number;
  /**
   * The key: the `kid` of a key this issuer made (the current one by default, or an older
   * one, published or not), or "stranger": a key the issuer never publishes (header kid
   * "stranger" unless `header.kid` says otherwise).
   */
  key?: string;
  /**
   * Protected header changes over `{ alg, typ: "JWT", kid }`: a value replaces, `undefined`
   * deletes (e.g. `{ kid: undefined }`), a new name adds (`jku`, `x5u`, `jwk`, `crit`…). A
   * `crit` list is honoured for signing. `alg` must suit the key.
   */
  header?: Record<string, unknown>;
};

/** The requests each endpoint received (counted on arrival, whatever the mode). */
export type IssuerRequestCounts = { discovery: number; jwks: number; actions: number; other: number };

/** A running local issuer. */
export type LocalIssuer = {
  /** `http://127.0.0.1:<port>`: the `iss` of its tokens and what to configure as trusted. */
  readonly issuer: string;
  /** The `kid` of the key that signs by default. */
  readonly currentKid: string;
  /** The `kid`s the JWKS publishes now. */
  publishedKids(): string[];
  /** The current key's public JWK (with `kid`, `alg`, `use`). */
  publicJwk(): Promise<JWK>;
  /** The claim set `token` would sign (GitHub Actions' claims), with `overrides` applied. */
  claims(overrides?: ClaimOverrides, opts?: Pick<TokenOptions, "audience" | "iat" | "lifetimeSeconds">): Record<string, unknown>;
  /** A signed ID token (compact JWS). */
  token(overrides?: ClaimOverrides, opts?: TokenOptions): Promise<string>;
  /**
   * Makes a new current key and publishes it; the previous current key stays published
   * unless `keepOld` is false (tokens it signed then have an unknown kid). `kid` names the new
   * key (default: a fresh one; reusing a published kid makes two keys share it). Returns the new kid.
   */
  rotate(opts?: { keepOld?: boolean; alg?: IssuerKeyAlg; kid?: string }): Promise<string>;
  /** Changes how discovery and JWKS answer from the next request on. */
  setMode(mode: IssuerMode): void;
  /** Fields merged over the discovery document (`undefined` deletes), e.g. a foreign `jwks_uri`. */
  setDiscovery(overrides: Record<string, unknown>): void;
  /** Makes `GET path` answer 302 to `location` (to test that redirects are not followed). */
  setRedirect(path: string, location: string): void;
  /** Live request counters. */
  readonly requests: Readonly<IssuerRequestCounts>;
  /**
   * Turns on the stand-in for GitHub's Actions ID-token endpoint: `GET url&audience=<aud>`
   * with `Authorization: Bearer <requestToken>` answers `{"value": <token>}` signed with
   * `overrides` and `opts` for that audience (401 without the bearer token, as GitHub's).
   * Set these as ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN.
   */
  actionsTokenEndpoint(overrides?: ClaimOverrides, opts?: Omit<TokenOptions, "audience">): { url: string; requestToken: string };
  /** `alg: none`, no signature, with the current kid. */
  algNone(overrides?: ClaimOverrides, opts?: Pick<TokenOptions, "audience">): string;
  /** HS256 keyed with the current public key (its SPKI PEM, or the JWK's JSON): the alg-confusion attack. */
  hs256WithPublicKey(overrides?: ClaimOverrides, opts?: Pick<TokenOptions, "audience"> & { secret?: "pem" | "jwk" }): Promise<string>;
  /** Stops the server, dropping open connections. */
  close(): Promise<void>;
};

/** The audience tokens carry unless told otherwise. */
export const defaultAudience = "keyward.test";

type IssuerKey = { kid: string; alg: IssuerKeyAlg; privateKey: CryptoKey; publicKey: CryptoKey; published: boolean };

/** Starts an issuer on 127.0.0.1 with one RS256 key; `clock` dates its tokens (default: real time). */
export async function startLocalIssuer(opts: { clock?: Clock } = {}): Promise<LocalIssuer> {
  const clock = opts.clock ?? systemClock;
  const keys: IssuerKey[] = [];
  let current = await makeKey("RS256");
  current.published = true;
  let stranger: IssuerKey | undefined;
  let mode: IssuerMode = { kind: "ok" };
  let discoveryOverrides: Record<string, unknown> = {};
  let actions: { requestToken: string; overrides: ClaimOverrides; opts: Omit<TokenOptions, "audience"> } | undefined;
  const redirects = new Map<string, string>();
  const requests: IssuerRequestCounts = { discovery: 0, jwks: 0, actions: 0, other: 0 };
  const timers = new Set<NodeJS.Timeout>();
  let issuer = "";

  async function makeKey(alg: IssuerKeyAlg, kid = `k${keys.length + 1}-${randomUUID().slice(0, 8)}`): Promise<IssuerKey> {
    const pair = await generateKeyPair(alg, { extractable: true });
    const key = { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, published: false };
    keys.push(key);
    return key;
  }

  async function jwkOf(key: IssuerKey): Promise<JWK> {
    return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: "sig" };
  }

  function claims(overrides: ClaimOverrides = {}, o: Pick<TokenOptions, "audience" | "iat" | "lifetimeSeconds"> = {}): Record<string, unknown> {
    const iat = o.iat ?? Math.floor(clock.now().getTime() / 1000);
    const sha = createHash("sha1").update(String(iat)).digest("hex");
    const base: Record<string, unknown> = {
      jti: randomUUID(),
      sub: "repo:acme/deploy:ref:refs/heads/main",
      aud: o.audience ?? defaultAudience,
      ref: "refs/heads/main",
      sha,
      repository: "acme/deploy",
      repository_owner: "acme",
      repository_owner_id: "987654",
      run_id: "9876543210",
      run_number: "42",
      run_attempt: "1",
      repository_visibility: "private",
      repository_id: "123456789",
      actor_id: "583231",
      actor: "octocat",
      workflow: "deploy",
      head_ref: "",
      base_ref: "",
      event_name: "push",
      ref_protected: "true",
      ref_type: "branch",
      workflow_ref: "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
      workflow_sha: sha,
      job_workflow_ref: "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
      job_workflow_sha: sha,
      environment: "production",
      runner_environment: "github-hosted",
      iss: issuer,
      nbf: iat - 600,
      exp: iat + (o.lifetimeSeconds ?? 300),
      iat,
    };
    return applyChanges(base, overrides);
  }

  async function token(overrides: ClaimOverrides = {}, o: TokenOptions = {}): Promise<string> {
    let key: IssuerKey;
    if (o.key === "stranger") key = stranger ??= await makeKey("RS256", "stranger");
    else if (o.key !== undefined) key = keys.find((k) => k.kid === o.key) ?? failWith(`no key ${o.key}`);
    else key = current;
    const header = applyChanges({ alg: key.alg, typ: "JWT", kid: key.kid }, o.header ?? {});
    const payload = new TextEncoder().encode(JSON.stringify(claims(overrides, o)));
    const crit = Array.isArray(header["crit"]) ? Object.fromEntries((header["crit"] as string[]).map((name) => [name, true])) : undefined;
    return new CompactSign(payload).setProtectedHeader(header as { alg: string }).sign(key.privateKey, crit === undefined ? undefined : { crit });
  }

  function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
    return `${b64json(header)}.${b64json(payload)}`;
  }

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/.well-known/openid-configuration") {
      requests.discovery++;
      const doc = applyChanges({ issuer, jwks_uri: `${issuer}/.well-known/jwks`, subject_types_supported: ["public", "pairwise"], response_types_supported: ["id_token"], id_token_signing_alg_values_supported: ["RS256"], claims_supported: Object.keys(claims()), scopes_supported: ["openid"] }, discoveryOverrides);
      return answer(req, res, "discovery", JSON.stringify(doc));
    }
    if (path === "/.well-known/jwks") {
      requests.jwks++;
      const published = keys.filter((k) => k.published);
      return answer(req, res, "jwks", JSON.stringify({ keys: await Promise.all(published.map(jwkOf)) }));
    }
    if (path === "/actions/id-token" && actions !== undefined) {
      requests.actions++;
      // The auth scheme is case-insensitive (RFC 9110 §11.1); GitHub's docs send "bearer".
      const [scheme = "", credential] = (req.headers.authorization ?? "").split(" ");
      if (scheme.toLowerCase() !== "bearer" || credential !== actions.requestToken) return send(res, 401, JSON.stringify({ message: "bad request token" }));
      const audience = new URL(req.url ?? "/", issuer).searchParams.get("audience") ?? defaultAudience;
      return send(res, 200, JSON.stringify({ count: 1, value: await token(actions.overrides, { ...actions.opts, audience }) }));
    }
    requests.other++;
    const location = redirects.get(path ?? "");
    if (location !== undefined) {
      res.writeHead(302, { location, "content-length": 0 });
      res.end();
      return;
    }
    send(res, 404, JSON.stringify({ error: "not found" }));
  }

  /** Answers an issuer endpoint as the mode says. */
  async function answer(req: IncomingMessage, res: ServerResponse, endpoint: "discovery" | "jwks", body: string): Promise<void> {
    const m = mode;
    if (m.kind === "ok" || (m.on === "jwks" && endpoint !== "jwks")) return send(res, 200, body);
    if (m.kind === "down") {
      if (m.how === "503") return send(res, 503, JSON.stringify({ error: "unavailable" }));
      req.socket.destroy();
      return;
    }
    if (m.kind === "slow") {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, m.delayMs);
        timers.add(t);
      });
      if (!res.destroyed) send(res, 200, body);
      return;
    }
    const total = m.bytes ?? 10 * 1024 * 1024;
    res.writeHead(200, { "content-type": "application/json", ...(m.declareLength === true ? { "content-length": String(total) } : {}) });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    res.on("error", () => undefined);
    while (sent < total && !res.destroyed) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
    if (!res.destroyed) res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    get issuer() {
      return issuer;
    },
    get currentKid() {
      return current.kid;
    },
    publishedKids: () => keys.filter((k) => k.published).map((k) => k.kid),
    publicJwk: () => jwkOf(current),
    claims,
    token,
    async rotate(o = {}) {
      const previous = current;
      current = await makeKey(o.alg ?? "RS256", o.kid);
      current.published = true;
      if (o.keepOld === false) previous.published = false;
      return current.kid;
    },
    setMode(m) {
      mode = m;
    },
    setDiscovery(overrides) {
      discoveryOverrides = overrides;
    },
    setRedirect(path, location) {
      redirects.set(path, location);
    },
    requests,
    actionsTokenEndpoint(overrides = {}, o = {}) {
      actions = { requestToken: randomUUID(), overrides, opts: o };
      return { url: `${issuer}/actions/id-token?api-version=2.0`, requestToken: actions.requestToken };
    },
    algNone(overrides = {}, o = {}) {
      return `${unsigned({ alg: "none", typ: "JWT", kid: current.kid }, claims(overrides, o))}.`;
    },
    async hs256WithPublicKey(overrides = {}, o = {}) {
      const secret = o.secret === "jwk" ? JSON.stringify(await jwkOf(current)) : await exportSPKI(current.publicKey);
      const input = unsigned({ alg: "HS256", typ: "JWT", kid: current.kid }, claims(overrides, o));
      return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The token with its payload changed (default: `repository` becomes "acme/infra-evil") and
 * the original signature kept.
 */
export function tamper(token: string, changes: ClaimOverrides = { repository: "acme/infra-evil" }): string {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload ?? ""))) as Record<string, unknown>;
  return `${header}.${b64json(applyChanges(claims, changes))}.${signature}`;
}

/** The first `keep` characters of the token (default: half of it). */
export function truncate(token: string, keep = Math.floor(token.length / 2)): string {
  return token.slice(0, keep);
}

function b64json(v: unknown): string {
  return base64url.encode(JSON.stringify(v));
}

function applyChanges(base: Record<string, unknown>, changes: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function failWith(message: string): never {
  throw new Error(message);
}
