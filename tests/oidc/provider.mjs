// A real OpenID Connect provider for Lapis's tests (panva's oidc-provider), shaped like Entra ID.
// Usage: node provider.mjs CONFIG.json. The config names the port, issuer, clients, signing keys
// and a users file; the users file is read on every sign-in, so a test can change a user's
// groups between two sign-ins ("a removed group takes effect at the next sign-in").
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const users = () => JSON.parse(fs.readFileSync(config.usersFile, 'utf8'));
const clients = () => JSON.parse(fs.readFileSync(config.clientsFile, 'utf8'));

// Everything in memory, except clients: those are read from a file that the test fixture writes,
// so a Lapis server started on any port can be registered without restarting the provider.
const stores = new Map();
class Adapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }
  async upsert(id, payload) { this.store.set(id, payload); }
  async find(id) {
    if (this.name === 'Client') return clients()[id];
    return this.store.get(id);
  }
  async findByUid(uid) { return [...this.store.values()].find((p) => p.uid === uid); }
  async findByUserCode(code) { return [...this.store.values()].find((p) => p.userCode === code); }
  async consume(id) { const p = this.store.get(id); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.store.delete(id); }
  async revokeByGrantId(grantId) {
    for (const [id, p] of this.store) if (p.grantId === grantId) this.store.delete(id);
  }
}
const ENTRA_CLAIMS = [
  'tid', 'oid', 'preferred_username', 'name', 'groups', 'roles', 'hasgroups',
  '_claim_names', '_claim_sources',
];

const provider = new Provider(config.issuer, {
  adapter: Adapter,
  jwks: config.jwks,
  cookies: { keys: ['lapis-test-cookie-key'] },
  // Entra puts the user's claims in the ID token itself, not only behind the userinfo endpoint.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ENTRA_CLAIMS },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: config.idTokenTtl || 3600 },
  findAccount: async (ctx, id) => {
    const user = users()[id];
    if (!user) return undefined;
    return { accountId: id, claims: async () => ({ sub: user.sub || id, ...user.claims }) };
  },
});
provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
