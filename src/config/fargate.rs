//! The task sizes Fargate accepts (which memory goes with which CPU), and the zones it runs in.

use super::{err, join, InputError};

/// Memory sizes (MiB) Fargate allows for a CPU size; empty when the CPU size itself is invalid.
pub fn fargate_memory_options(cpu: u32) -> Vec<u32> {
    let gib = |n: u32| n * 1024;
    match cpu {
        256 => vec![512, 1024, 2048],
        512 => (1..=4).map(gib).collect(),
        1024 => (2..=8).map(gib).collect(),
        2048 => (4..=16).map(gib).collect(),
        4096 => (8..=30).map(gib).collect(),
        8192 => (16..=60).step_by(4).map(gib).collect(),
        16384 => (32..=120).step_by(8).map(gib).collect(),
        _ => Vec::new(),
    }
}

/// Regions where Fargate runs in some zones only, by the zone-id prefix, with those zones. From
/// AWS's "Supported Regions for Amazon ECS on AWS Fargate" page (Linux containers), which
/// changes: us-east-1 once lacked `use1-az3`, and no longer does.
const FARGATE_ONLY_IN: &[(&str, &[&str])] = &[
    ("usw1", &["usw1-az1", "usw1-az3"]),
    ("apne1", &["apne1-az1", "apne1-az2", "apne1-az4"]),
];

/// Whether Fargate runs in the availability zone with this id (`use1-az1`).
pub fn fargate_runs_in(zone_id: &str) -> bool {
    let prefix = zone_id.split('-').next().unwrap_or_default();
    match FARGATE_ONLY_IN.iter().find(|(p, _)| *p == prefix) {
        Some((_, zones)) => zones.contains(&zone_id),
        None => true,
    }
}

pub const FARGATE_CPU_SIZES: &[u32] = &[256, 512, 1024, 2048, 4096, 8192, 16384];

/// The Fargate CPU sizes that allow `memory` (all of them when no memory is given).
pub fn cpu_sizes_for(memory: Option<u32>) -> Vec<u32> {
    FARGATE_CPU_SIZES
        .iter()
        .copied()
        .filter(|cpu| memory.is_none_or(|m| fargate_memory_options(*cpu).contains(&m)))
        .collect()
}

/// Fargate rejects other combinations at RegisterTaskDefinition; catch them before any call.
pub fn validate_task_size(cpu: u32, memory: u32) -> Result<(), InputError> {
    let options = fargate_memory_options(cpu);
    if options.is_empty() {
        return Err(err(format!(
            "--cpu {cpu} is not a Fargate CPU size: use one of {}",
            join(FARGATE_CPU_SIZES)
        )));
    }
    if !options.contains(&memory) {
        return Err(err(format!(
            "--memory {memory} is not allowed with --cpu {cpu} on Fargate: use one of {}",
            describe_range(&options)
        )));
    }
    Ok(())
}

fn describe_range(values: &[u32]) -> String {
    if values.len() <= 4 {
        return join(values);
    }
    let step = values[1] - values[0];
    format!(
        "{}-{} in steps of {step}",
        values[0],
        values[values.len() - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_zones_follow_awss_list() {
        for zone in [
            "use1-az3",
            "use1-az1",
            "usw1-az1",
            "usw1-az3",
            "apne1-az4",
            "cac1-az3",
        ] {
            assert!(fargate_runs_in(zone), "{zone}");
        }
        for zone in ["usw1-az2", "apne1-az3"] {
            assert!(!fargate_runs_in(zone), "{zone}");
        }
    }

    #[test]
    fn fargate_sizes() {
        for (cpu, mem) in [
            (256, 512),
            (256, 2048),
            (512, 4096),
            (1024, 2048),
            (4096, 30720),
            (8192, 16384),
            (16384, 122880),
        ] {
            assert!(validate_task_size(cpu, mem).is_ok(), "{cpu}/{mem} rejected");
        }
        for (cpu, mem) in [
            (256, 4096),
            (512, 512),
            (1024, 1024),
            (4096, 31744),
            (8192, 18432),
            (300, 1024),
            (0, 0),
        ] {
            assert!(
                validate_task_size(cpu, mem).is_err(),
                "{cpu}/{mem} accepted"
            );
        }
    }
}
