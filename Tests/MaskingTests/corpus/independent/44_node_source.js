const firebaseConfig = {
  apiKey: "AIza8xxu0ado_Q0QHsuGsjJ1dQerhU_LD9msnXP",
  authDomain: "acme-app.firebaseapp.com",
  projectId: "acme-app",
};

const stripe = require('stripe')('sk_live_wfbCjBde3dHWVtKXxqLYo5Tq');
const shopify = new Shopify({ accessToken: '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', shop: 'acme.myshopify.com' });
const sg = require('@sendgrid/mail'); sg.setApiKey('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');
const octokit = new Octokit({ auth: `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` });
const anthropic = new Anthropic({ apiKey: process.env.KEY || 'sk-ant-api03-huLB0tjGkia6SNssHkk8p6nx-c5n9NZfAymEKNG37sR5vb-zsriLjZwJqwH_fNoqIbMVST1zssAgBI59jx8o6ov_0xHTBAA' });
const db = knex({ client: 'pg', connection: { host: 'db', user: 'app', password: 'JLx4^bau8G^hkuOj_S2-o', database: 'app' } });
module.exports = { firebaseConfig };
