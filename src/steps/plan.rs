//! What a step's `look` found (a plan item per resource, with its drift as data) and what its
//! `apply` or `destroy` did.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use serde::{Serialize, Serializer};

use crate::ledger::ResourceKind;

/// What `look` found for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ItemState {
    /// Not there: bootstrap will create it.
    Missing,
    /// There and as wanted.
    Present { id: String },
    /// There but different from the inputs. In JSON, `what` is the drift as the plan says it.
    Drifted {
        id: String,
        #[serde(rename = "what", serialize_with = "as_plan_text")]
        drift: Drift,
    },
    /// The user's own resource (e.g. --vpc-id): used, never changed or deleted.
    Used { id: String },
    /// Same name, but not tagged for this pool: ecsctl refuses to touch it.
    Foreign { id: String },
}

impl ItemState {
    pub fn drifted(id: impl Into<String>, what: impl Into<String>, remedy: Remedy) -> Self {
        Self::Drifted {
            id: id.into(),
            drift: Drift {
                what: what.into(),
                remedy,
            },
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Missing => None,
            Self::Present { id }
            | Self::Drifted { id, .. }
            | Self::Used { id }
            | Self::Foreign { id } => Some(id),
        }
    }

    /// Whether ecsctl owns something that exists (and destroy should remove it).
    pub fn is_owned(&self) -> bool {
        matches!(self, Self::Present { .. } | Self::Drifted { .. })
    }
}

/// How a resource differs from what bootstrap wants, and what bootstrap will do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// What differs, in plain words, e.g. "retention is 7 days, wanted 30 days".
    pub what: String,
    pub remedy: Remedy,
}

/// What bootstrap does about a drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Puts it back in place; the words say how when there is more to say than the drift itself
    /// ("will be updated", "a new revision will be registered").
    Update(Option<&'static str>),
    /// Restores what is scheduled for deletion.
    Restore,
    /// Nothing yet: it is still being deleted, and can be recreated once it is gone.
    AwaitDeletion,
}

impl Drift {
    /// The drift as the plan shows it, with what bootstrap will do.
    pub fn plan_text(&self) -> String {
        let what = &self.what;
        match self.remedy {
            Remedy::Update(None) => what.clone(),
            Remedy::Update(Some(how)) => format!("{what} ({how})"),
            Remedy::Restore => format!("{what} (will be restored)"),
            Remedy::AwaitDeletion => {
                format!("{what}; bootstrap can recreate it once it is gone")
            }
        }
    }
}

fn as_plan_text<S: Serializer>(drift: &Drift, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&drift.plan_text())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    pub kind: ResourceKind,
    pub name: String,
    #[serde(flatten)]
    pub state: ItemState,
    /// What the plan should also say about it, e.g. the worker's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl PlanItem {
    pub fn new(kind: ResourceKind, name: impl Into<String>, state: ItemState) -> Self {
        Self {
            kind,
            name: name.into(),
            state,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// What `look` found for a step.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    pub step: &'static str,
    pub items: Vec<PlanItem>,
}

impl StepPlan {
    /// A plan of one resource.
    pub fn one(step: &'static str, kind: ResourceKind, name: &str, state: ItemState) -> Self {
        Self {
            step,
            items: vec![PlanItem::new(kind, name, state)],
        }
    }

    pub fn is_noop(&self) -> bool {
        self.items
            .iter()
            .all(|i| matches!(i.state, ItemState::Present { .. } | ItemState::Used { .. }))
    }
}

/// What `apply` or `destroy` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    /// Human-readable changes made, e.g. "created VPC vpc-0abc"; empty when nothing changed.
    pub changes: Vec<String>,
    /// The step's resources after the run, by kind, for the result output.
    pub resources: BTreeMap<String, Vec<String>>,
}

impl StepReport {
    pub fn change(&mut self, what: impl Into<String>) {
        self.changes.push(what.into());
    }

    pub fn resource(&mut self, label: &str, id: impl Into<String>) {
        self.resources
            .entry(label.to_string())
            .or_default()
            .push(id.into());
    }
}

/// What `look` saw, kept for `apply` in the same run.
#[derive(Debug, Default)]
pub struct Seen<T>(Mutex<Option<T>>);

impl<T: Clone> Seen<T> {
    pub fn put(&self, value: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    pub fn get(&self) -> Result<T> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| anyhow!("internal error: apply ran before look"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_says_what_bootstrap_will_do_and_json_keeps_its_shape() {
        let item = PlanItem::new(
            ResourceKind::Secret,
            "ecsctl/p/prefect-api-key",
            ItemState::drifted("arn:s", "scheduled for deletion", Remedy::Restore),
        );
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            serde_json::json!({
                "kind": "secret",
                "name": "ecsctl/p/prefect-api-key",
                "state": "drifted",
                "id": "arn:s",
                "what": "scheduled for deletion (will be restored)"
            })
        );
        let update = Drift {
            what: "desired count 3 (wanted 1)".into(),
            remedy: Remedy::Update(Some("will be updated")),
        };
        assert_eq!(
            update.plan_text(),
            "desired count 3 (wanted 1) (will be updated)"
        );
        let plain = Drift {
            what: "retention is 7 days, wanted 30 days".into(),
            remedy: Remedy::Update(None),
        };
        assert_eq!(plain.plan_text(), plain.what);
    }
}
