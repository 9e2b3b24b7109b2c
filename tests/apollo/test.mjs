// Apollo Client 4's normalized cache against a running devicegraph.
//
// Proves, with an InMemoryCache that has NO typePolicies (no keyFields, no
// possibleTypes, no field policies):
//   1. devices normalize: `Device:<id>` entries in cache.extract(), and
//      cache.identify() finds them;
//   2. a device fetched through a campaign page reads back complete from the cache
//      alone (readFragment and watchFragment, no missing field, no network);
//   3. the same device fetched by device(account:, imei:), through the campaign page
//      and through node(id:) is ONE cache entry holding the fields of all three.
//
// Usage: DEVICEGRAPH_URL=http://127.0.0.1:8080 node test.mjs
// Optional: DEVICEGRAPH_ACCOUNT, DEVICEGRAPH_CAMPAIGN (default: the embedded
// simulator's sample account and campaign, as `cargo run --release` prints them).
// Exits 0 and prints "apollo: ok ..." when every check holds, 1 otherwise.

import assert from "node:assert/strict";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const base = process.env.DEVICEGRAPH_URL;
if (!base) {
  console.error("apollo: set DEVICEGRAPH_URL to the gateway, e.g. http://127.0.0.1:8080");
  process.exit(2);
}
const account = process.env.DEVICEGRAPH_ACCOUNT ?? "0000123456-00001";
const campaignId = process.env.DEVICEGRAPH_CAMPAIGN ?? "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9";

// Apollo reports cache-write problems ("Missing field ...") as console warnings:
// any warning or error fails the run.
const complaints = [];
for (const level of ["warn", "error"]) {
  const original = console[level];
  console[level] = (...args) => {
    complaints.push(args.map(String).join(" "));
    original(...args);
  };
}

const DEVICE_FIELDS = gql`
  fragment CardFields on Device {
    id
    imei
    account
    make
    model
    firmware
    lastConnectionTime
  }
`;

const CAMPAIGN_PAGE = gql`
  query CampaignPage($account: String!, $id: ID!) {
    campaign(account: $account, id: $id) {
      id
      account
      totalDevices
      devices(first: 5) {
        edges {
          cursor
          node {
            id
            imei
            status
            device {
              ...CardFields
            }
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
  ${DEVICE_FIELDS}
`;

const DEVICE = gql`
  query DeviceCard($account: String!, $imei: IMEI!) {
    device(account: $account, imei: $imei) {
      id
      imei
      make
      fotaEligible
      status
    }
  }
`;

const NODE = gql`
  query Node($id: ID!) {
    node(id: $id) {
      id
      ... on Device {
        imei
        protocol
      }
    }
  }
`;

const NODES = gql`
  query Nodes($ids: [ID!]!) {
    nodes(ids: $ids) {
      id
      ... on Device {
        imei
      }
      ... on CampaignDevice {
        imei
        status
      }
    }
  }
`;

const cache = new InMemoryCache();
const client = new ApolloClient({
  link: new HttpLink({ uri: new URL("/graphql", base).toString() }),
  cache,
});

const deviceKeys = () => Object.keys(cache.extract()).filter((k) => k.startsWith("Device:"));

// --- 1. A campaign page: its devices normalize with no typePolicies. ---
const page = await client.query({
  query: CAMPAIGN_PAGE,
  variables: { account, id: campaignId },
  fetchPolicy: "network-only",
});
const edges = page.data.campaign.devices.edges;
assert.ok(edges.length >= 2, `campaign ${campaignId} has at least two devices`);
const [first, second] = edges.map((e) => e.node.device);
assert.ok(first && second, "the page's devices were loaded");

let store = cache.extract();
for (const edge of edges) {
  const device = edge.node.device;
  const key = cache.identify(device);
  assert.equal(key, `Device:${device.id}`, "identify() keys a Device by __typename and id");
  assert.ok(store[key], `${key} is a normalized entry`);
  assert.equal(store[key].imei, device.imei);
  const rowKey = cache.identify(edge.node);
  assert.equal(rowKey, `CampaignDevice:${edge.node.id}`);
  assert.deepEqual(store[rowKey].device, { __ref: key }, "the row references the device entry");
}
assert.ok(store[`Campaign:${campaignId}`], "the campaign is keyed by ThingSpace's id");
assert.equal(deviceKeys().length, edges.length, "one entry per device of the page");

// --- 2. A device fetched through the campaign page reads back complete, cache only. ---
const from = { __typename: "Device", id: second.id };
const read = client.readFragment({ fragment: DEVICE_FIELDS, from });
assert.ok(read, "readFragment found the device");
assert.deepEqual(read, second, "every field of the card, from the cache alone");
const watched = client.watchFragment({ fragment: DEVICE_FIELDS, from }).getCurrentResult();
assert.equal(watched.complete, true, `watchFragment complete (missing: ${JSON.stringify(watched.missing)})`);
assert.equal(watched.missing, undefined);
const again = await client.query({
  query: CAMPAIGN_PAGE,
  variables: { account, id: campaignId },
  fetchPolicy: "cache-only",
});
assert.deepEqual(again.data, page.data, "the whole page reads back from the cache");
const pageDiff = cache.diff({
  query: CAMPAIGN_PAGE,
  variables: { account, id: campaignId },
  returnPartialData: true,
  optimistic: false,
});
assert.equal(pageDiff.complete, true, `page complete (missing: ${JSON.stringify(pageDiff.missing)})`);

// --- 3. The same device by device(account:, imei:) and by node(id:): one entry. ---
const card = await client.query({
  query: DEVICE,
  variables: { account, imei: first.imei },
  fetchPolicy: "network-only",
});
assert.equal(card.data.device.id, first.id, "device() gives the id the campaign page gave");
const byNode = await client.query({
  query: NODE,
  variables: { id: first.id },
  fetchPolicy: "network-only",
});
assert.equal(byNode.data.node.__typename, "Device");
assert.equal(byNode.data.node.id, first.id);

store = cache.extract();
const key = cache.identify({ __typename: "Device", id: first.id });
const sameImei = Object.entries(store).filter(
  ([k, v]) => k.startsWith("Device:") && v.imei === first.imei,
);
assert.equal(sameImei.length, 1, "exactly one Device entry for the IMEI");
const entry = store[key];
assert.ok("lastConnectionTime" in entry, "a field only the campaign page asked for");
assert.ok("fotaEligible" in entry, "a field only device() asked for");
assert.ok("protocol" in entry, "a field only node() asked for");
const rootDevice = Object.entries(store.ROOT_QUERY).find(([k]) => k.startsWith("device("));
assert.ok(rootDevice, "ROOT_QUERY holds the device() field");
assert.deepEqual(rootDevice[1], { __ref: key }, "device() points at the same entry");
assert.equal(deviceKeys().length, edges.length, "no entry was added for the same device");

// A cache-only read of the card query now needs no network.
const cached = await client.query({
  query: DEVICE,
  variables: { account, imei: first.imei },
  fetchPolicy: "cache-only",
});
assert.equal(cached.data.device.id, first.id);
assert.equal(cached.data.device.make, first.make);
const cardDiff = cache.diff({
  query: DEVICE,
  variables: { account, imei: first.imei },
  returnPartialData: true,
  optimistic: false,
});
assert.equal(cardDiff.complete, true);

// nodes(ids:) with both kinds of id, in the order asked.
const ids = [edges[0].node.id, second.id, first.id];
const many = await client.query({ query: NODES, variables: { ids }, fetchPolicy: "network-only" });
assert.deepEqual(
  many.data.nodes.map((n) => n.__typename),
  ["CampaignDevice", "Device", "Device"],
);
assert.deepEqual(
  many.data.nodes.map((n) => n.id),
  ids,
);
assert.equal(many.data.nodes[0].status, edges[0].node.status);

assert.deepEqual(complaints, [], "Apollo printed no warning");
console.log(
  `apollo: ok (${edges.length} devices of campaign ${campaignId} normalized; ` +
    `${deviceKeys().length} Device entries; device ${first.imei} is ${key} via campaign, device() and node())`,
);
