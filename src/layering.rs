//! Imports run one way: `main → commands → {health, engine, prompt} → steps → {aws, prefect} →
//! config`.
//! This test reads every source file and fails on an import that points back up, and on a step
//! that reaches into a sibling step (shared pieces live in `steps::{context, own, plan, shared,
//! wait, iam, policy, retag}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may use only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("progress", 0),
    ("cli", 0),
    ("error", 1),
    ("ledger", 1),
    ("aws", 1),
    ("prefect", 1),
    ("steps", 2),
    ("account", 2),
    ("engine", 3),
    ("health", 3),
    ("prompt", 3),
    ("commands", 4),
    ("main", 5),
];

/// Modules of `steps` that every step may use; anything else under `steps/` is a step.
const STEP_COMMONS: &[&str] = &[
    "context", "own", "plan", "shared", "wait", "iam", "policy", "retag",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to.
fn owner(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().iter().next().unwrap();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The modules a source file's code names right after `prefix` (`crate::` or `super::`);
/// comments are prose, not imports.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|line| {
            line.match_indices(prefix).filter_map(move |(i, _)| {
                let name: String = line[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
        })
        .collect()
}

/// The steps' own modules: every module under `steps/` but the shared ones.
fn step_modules(steps: &Path) -> Vec<String> {
    std::fs::read_dir(steps)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.trim_end_matches(".rs").to_string()
        })
        .filter(|name| name != "mod" && !STEP_COMMONS.contains(&name.as_str()))
        .collect()
}

/// A step module's top file, whose `super` is `steps` (not a step's own submodule).
fn is_step_top(steps: &Path, file: &Path) -> bool {
    let parent = file.parent();
    let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
    (parent == Some(steps) && !is_mod) || (is_mod && parent.and_then(Path::parent) == Some(steps))
}

#[test]
fn imports_run_one_way_and_steps_do_not_reach_into_each_other() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let steps = src.join("steps");
    let step_names = step_modules(&steps);
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let top = owner(&src, file);
        if top == "layering" {
            continue;
        }
        let own = *layer
            .get(top.as_str())
            .unwrap_or_else(|| panic!("{top} has no layer in LAYERS"));
        let text = std::fs::read_to_string(file).unwrap();
        for used in names_after(&text, "crate::") {
            match layer.get(used.as_str()) {
                _ if used == top => {}
                Some(&l) if l < own => {}
                _ => wrong.push(format!("{} uses crate::{used}", file.display())),
            }
        }
        if is_step_top(&steps, file) {
            for named in names_after(&text, "super::") {
                if step_names.contains(&named) {
                    wrong.push(format!("{} uses the step {named}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports pointing the wrong way:\n{}",
        wrong.join("\n")
    );
}
