// Hive Gateway serving the supergraph that mesh.config.ts composes.
//
// - The response cache is on: in memory (the gateway's default LRU store), answers
//   kept 5 minutes, one cache for every caller (`session: () => null`; the bench is
//   a single caller).
// - One field is added to the REST shape: `lastCheckIns(acc, deviceId, last)`, the
//   first `last` entries of the check-in history (which ThingSpace sends newest
//   first), so that a card asks for the same 5 check-ins as devicegraph's
//   `checkIns(last: 5)`. It calls the subgraph's own `checkInHistory` field through
//   the in-context SDK: one REST call, as `checkInHistory` would make.
import { defineConfig } from '@graphql-hive/gateway';

export const gatewayConfig = defineConfig({
  responseCaching: {
    session: () => null,
    ttl: 5 * 60 * 1000,
  },
  additionalTypeDefs: /* GraphQL */ `
    extend type Query {
      "The device's last \`last\` check-ins, newest first."
      lastCheckIns(acc: String!, deviceId: String!, last: Int!): [CheckIn]
    }
  `,
  additionalResolvers: {
    Query: {
      async lastCheckIns(root, args, context: any, info) {
        const all = await context.ThingSpace.Query.checkInHistory({
          root,
          args: { acc: args.acc, deviceId: args.deviceId },
          context,
          info,
        });
        return Array.isArray(all) ? all.slice(0, Math.max(0, args.last)) : all;
      },
    },
  },
  // Warnings and errors only: a log line per request would be measured too.
  logging: 'warn',
});
