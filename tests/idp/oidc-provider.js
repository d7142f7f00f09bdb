// An OpenID provider for the integration tests, on loopback only: the npm
// package oidc-provider (pinned in package-lock.json) with one static client,
// the portal, and two users, alice and bob, who sign in with a password.
//
//   node oidc-provider.js <portal base URL> <client secret>
//
// The portal base is where mod_auth_openidc runs (its redirect URI is
// <base>/portal/redirect_uri, it may come back to any page under <base>/
// after a logout). Once listening, the provider prints one line,
// "listening <port>", on stdout; its issuer is http://127.0.0.1:<port>.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const [portal, clientSecret] = process.argv.slice(2);
if (!portal || !clientSecret) {
  console.error('usage: node oidc-provider.js <portal base URL> <client secret>');
  process.exit(2);
}

// The claims the tests expect to find, typed, in the chat's private data.
const USERS = {
  alice: {
    password: 'alice-password',
    claims: {
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Example',
      customer_number: 'C-1001',
      account_number: 4711,
      vip: true,
      address: { locality: 'Springfield', country: 'US' },
    },
  },
  bob: {
    password: 'bob-password',
    claims: {
      email: 'bob@example.com',
      email_verified: false,
      name: 'Bob Example',
      customer_number: 'C-2002',
      account_number: 815,
      vip: false,
      address: { locality: 'Shelbyville', country: 'US' },
    },
  },
};

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginForm(uid, failed) {
  return page('Sign in to the identity provider', `
${failed ? '<p id="login-failed">Wrong user name or password.</p>' : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label>User <input id="username" name="username" autocomplete="off"></label>
  <label>Password <input id="password" name="password" type="password"></label>
  <button id="sign-in" type="submit">Sign in</button>
</form>`);
}

async function findAccount(ctx, sub) {
  const user = USERS[sub];
  if (!user) {
    return undefined;
  }
  return {
    accountId: sub,
    async claims() {
      return { sub, ...user.claims };
    },
  };
}

// The portal is a first-party client: the users' consent is implied, so a
// grant of everything it asks for is made at the first authorization.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  if (grantId) {
    const grant = await oidc.provider.Grant.find(grantId);
    if (grant) {
      return grant;
    }
  }
  if (!oidc.session.accountId) {
    return undefined;
  }
  const grant = new oidc.provider.Grant({
    clientId: oidc.client.clientId,
    accountId: oidc.session.accountId,
  });
  grant.addOIDCScope(oidc.params.scope);
  await grant.save();
  return grant;
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out from the identity provider', `${form}
<button id="sign-out" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ format: 'jwk' });

  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'portal',
      client_secret: clientSecret,
      redirect_uris: [`${portal}/portal/redirect_uri`],
      post_logout_redirect_uris: [`${portal}/`, `${portal}/logged-out.html`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [{ ...signingKey, use: 'sig', kid: 'test-signing-key' }] },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    scopes: ['openid', 'email', 'profile', 'address', 'customer'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      address: ['address'],
      customer: ['customer_number', 'account_number', 'vip'],
    },
    findAccount,
    loadExistingGrant,
    pkce: { required: () => false },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  const oidcCallback = provider.callback();
  server.on('request', (req, res) => {
    const match = /^\/interaction\/([^/?]+)(\/login)?(?:\?|$)/.exec(req.url);
    if (!match) {
      oidcCallback(req, res);
      return;
    }
    interaction(provider, req, res, match[1], Boolean(match[2])).catch((err) => {
      console.error('interaction failed:', err);
      res.statusCode = 400;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`interaction failed: ${err.message}\n`);
    });
  });
  process.stdout.write(`listening ${port}\n`);
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 8192) {
        reject(new Error('form too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

async function interaction(provider, req, res, uid, submitted) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    throw new Error('the interaction does not match its cookie');
  }
  if (details.prompt.name !== 'login') {
    // Consent is implied (loadExistingGrant): nothing else is asked.
    throw new Error(`unexpected prompt ${details.prompt.name}`);
  }
  if (submitted && req.method === 'POST') {
    const form = await readForm(req);
    const user = USERS[form.get('username')];
    if (user && user.password === form.get('password')) {
      await provider.interactionFinished(req, res, {
        login: { accountId: form.get('username') },
      }, { mergeWithLastSubmission: false });
      return;
    }
  }
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(loginForm(uid, submitted));
}
