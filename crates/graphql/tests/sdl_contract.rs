//! The served schema against the contract (`tests/fixtures/contract.graphql`, a
//! verbatim copy of the public contract): every contract type, field, argument (type
//! and default) and enum value must be served with the same types; the project may
//! add more. Every served type and field must carry a description.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    FieldDefinition, InputValueDefinition, ServiceDocument, TypeDefinition, TypeKind,
    TypeSystemDefinition,
};
use devicegraph_graphql::{GraphqlConfig, sdl};

const CONTRACT: &str = include_str!("fixtures/contract.graphql");

fn types(doc: &ServiceDocument) -> BTreeMap<String, TypeDefinition> {
    doc.definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) => Some((t.node.name.node.to_string(), t.node.clone())),
            _ => None,
        })
        .collect()
}

fn kind_name(k: &TypeKind) -> &'static str {
    match k {
        TypeKind::Scalar => "scalar",
        TypeKind::Object(_) => "type",
        TypeKind::Interface(_) => "interface",
        TypeKind::Union(_) => "union",
        TypeKind::Enum(_) => "enum",
        TypeKind::InputObject(_) => "input",
    }
}

fn served_sdl() -> String {
    let (schema, _) = common::offline(GraphqlConfig::default());
    sdl(&schema)
}

fn compare_args(
    problems: &mut Vec<String>,
    at: &str,
    want: &[async_graphql::Positioned<InputValueDefinition>],
    got: &[async_graphql::Positioned<InputValueDefinition>],
) {
    for w in want {
        let name = &w.node.name.node;
        let Some(g) = got.iter().find(|g| g.node.name.node == *name) else {
            problems.push(format!("{at}({name}): argument missing"));
            continue;
        };
        if w.node.ty.node != g.node.ty.node {
            problems.push(format!(
                "{at}({name}): type {} served as {}",
                w.node.ty.node, g.node.ty.node
            ));
        }
        let wd = w.node.default_value.as_ref().map(|v| v.node.clone());
        let gd = g.node.default_value.as_ref().map(|v| v.node.clone());
        if wd != gd {
            problems.push(format!("{at}({name}): default {wd:?} served as {gd:?}"));
        }
    }
    // An added argument must be optional, or existing queries would break.
    for g in got {
        let added = !want.iter().any(|w| w.node.name.node == g.node.name.node);
        if added && !g.node.ty.node.nullable && g.node.default_value.is_none() {
            problems.push(format!(
                "{at}({}): added required argument",
                g.node.name.node
            ));
        }
    }
}

fn compare_fields(
    problems: &mut Vec<String>,
    ty: &str,
    want: &[async_graphql::Positioned<FieldDefinition>],
    got: &[async_graphql::Positioned<FieldDefinition>],
) {
    for w in want {
        let name = &w.node.name.node;
        let at = format!("{ty}.{name}");
        let Some(g) = got.iter().find(|g| g.node.name.node == *name) else {
            problems.push(format!("{at}: field missing"));
            continue;
        };
        if w.node.ty.node != g.node.ty.node {
            problems.push(format!(
                "{at}: type {} served as {}",
                w.node.ty.node, g.node.ty.node
            ));
        }
        compare_args(problems, &at, &w.node.arguments, &g.node.arguments);
    }
}

#[test]
fn served_schema_contains_the_contract() {
    let contract = types(&parse_schema(CONTRACT).unwrap());
    let served_text = served_sdl();
    let served = types(&parse_schema(&served_text).unwrap());
    assert!(
        contract.len() >= 20,
        "fixture parsed to {} types",
        contract.len()
    );

    let mut problems = Vec::new();
    for (name, want) in &contract {
        let Some(got) = served.get(name) else {
            problems.push(format!("{name}: type missing"));
            continue;
        };
        if kind_name(&want.kind) != kind_name(&got.kind) {
            problems.push(format!(
                "{name}: {} served as {}",
                kind_name(&want.kind),
                kind_name(&got.kind)
            ));
            continue;
        }
        match (&want.kind, &got.kind) {
            (TypeKind::Object(w), TypeKind::Object(g)) => {
                compare_fields(&mut problems, name, &w.fields, &g.fields);
                for interface in &w.implements {
                    if !g.implements.iter().any(|i| i.node == interface.node) {
                        problems.push(format!("{name}: does not implement {}", interface.node));
                    }
                }
            }
            (TypeKind::Interface(w), TypeKind::Interface(g)) => {
                compare_fields(&mut problems, name, &w.fields, &g.fields)
            }
            (TypeKind::InputObject(w), TypeKind::InputObject(g)) => {
                compare_args(&mut problems, name, &w.fields, &g.fields)
            }
            (TypeKind::Enum(w), TypeKind::Enum(g)) => {
                for v in &w.values {
                    let value = &v.node.value.node;
                    if !g.values.iter().any(|x| x.node.value.node == *value) {
                        problems.push(format!("{name}.{value}: enum value missing"));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "served SDL differs from the contract:\n{}\n\nserved SDL:\n{served_text}",
        problems.join("\n")
    );
}

#[test]
fn every_type_field_and_enum_value_is_described() {
    let served_text = served_sdl();
    let served = types(&parse_schema(&served_text).unwrap());
    let mut missing = Vec::new();
    for (name, ty) in &served {
        if ty.description.is_none() {
            missing.push(name.clone());
        }
        let fields: Vec<(&str, bool)> = match &ty.kind {
            TypeKind::Object(o) => o
                .fields
                .iter()
                .map(|f| (f.node.name.node.as_str(), f.node.description.is_some()))
                .collect(),
            TypeKind::InputObject(o) => o
                .fields
                .iter()
                .map(|f| (f.node.name.node.as_str(), f.node.description.is_some()))
                .collect(),
            TypeKind::Enum(e) => e
                .values
                .iter()
                .map(|v| (v.node.value.node.as_str(), v.node.description.is_some()))
                .collect(),
            _ => Vec::new(),
        };
        for (field, described) in fields {
            if !described {
                missing.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "without description: {missing:?}\n\nserved SDL:\n{served_text}"
    );
}

#[test]
fn sdl_names_the_scalars_formats() {
    let served_text = served_sdl();
    for needle in [
        "scalar DateTime",
        "scalar Date",
        "scalar IMEI",
        "Luhn",
        "UTC",
    ] {
        assert!(served_text.contains(needle), "SDL lacks {needle:?}");
    }
}
