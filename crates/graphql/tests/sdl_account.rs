//! The account part of revision 2 of the public contract, served as written: until
//! the contract fixture (`fixtures/contract.graphql`) is revision 2, this holds its
//! `Query.account`, `Account`, `AccountDeviceConnection` and `AccountDeviceEdge`
//! (without `AccountDeviceConnection.freshness`, which comes with `Freshness`), with
//! the contract's descriptions as the first paragraph of the served ones.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{FieldDefinition, TypeKind, TypeSystemDefinition};
use devicegraph_graphql::{GraphqlConfig, sdl};

const ACCOUNT_PART: &str = r#"
type Query {
  "One account: its devices as a connection."
  account(name: String!): Account
}

type Account {
  name: String!
  "Relay-style connection over every device of the account, ascending IMEI."
  devices(first: Int = 100, after: String, protocol: String, status: String, make: String, model: String, firmware: String, fotaEligible: Boolean): AccountDeviceConnection!
}

type AccountDeviceConnection {
  edges: [AccountDeviceEdge!]!
  pageInfo: PageInfo!
  totalCount: Int
}

type AccountDeviceEdge {
  cursor: String!
  node: Device!
}
"#;

/// `type.field` -> the field, for every object type of `sdl`.
fn fields(sdl: &str) -> BTreeMap<String, FieldDefinition> {
    let mut out = BTreeMap::new();
    for definition in parse_schema(sdl).unwrap().definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        if let TypeKind::Object(object) = &ty.node.kind {
            for field in &object.fields {
                out.insert(
                    format!("{}.{}", ty.node.name.node, field.node.name.node),
                    field.node.clone(),
                );
            }
        }
    }
    out
}

/// A field's arguments as `name: Type = default`, in order.
fn arguments(field: &FieldDefinition) -> Vec<String> {
    field
        .arguments
        .iter()
        .map(|a| {
            let default = a
                .node
                .default_value
                .as_ref()
                .map(|v| format!(" = {}", v.node))
                .unwrap_or_default();
            format!("{}: {}{default}", a.node.name.node, a.node.ty.node)
        })
        .collect()
}

#[test]
fn the_account_part_of_the_contract_is_served_as_written() {
    let (schema, _) = common::offline(GraphqlConfig::default());
    let served_text = sdl(&schema);
    let served = fields(&served_text);
    for (name, want) in fields(ACCOUNT_PART) {
        let Some(got) = served.get(&name) else {
            panic!("{name} is not served:\n{served_text}");
        };
        assert_eq!(got.ty.node, want.ty.node, "{name}");
        assert_eq!(arguments(got), arguments(&want), "{name}");
        if let Some(description) = &want.description {
            let served = got.description.as_ref().map(|d| d.node.as_str());
            assert!(
                served.is_some_and(|d| d.starts_with(description.node.as_str())),
                "{name}: {served:?}"
            );
        }
    }
}
