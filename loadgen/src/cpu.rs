//! CPU time of the server processes, from `/proc/<pid>/stat` (Linux), so a load run can report
//! CPU seconds per run next to its throughput.

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// user + system CPU seconds of one process, or `None` if it is gone.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Processes whose command name is one of `names`, grouped by name.
pub fn find_processes(names: &[&str]) -> BTreeMap<String, Vec<u32>> {
    let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let comm = comm.trim();
        if let Some(name) = names
            .iter()
            .find(|n| comm == **n || (n.len() > 15 && n.starts_with(comm)))
        {
            found.entry((*name).to_owned()).or_default().push(pid);
        }
    }
    found
}

/// CPU seconds of each named group, summed over its processes.
pub fn snapshot(groups: &BTreeMap<String, Vec<u32>>) -> BTreeMap<String, f64> {
    groups
        .iter()
        .map(|(name, pids)| {
            (
                name.clone(),
                pids.iter().filter_map(|p| process_cpu_secs(*p)).sum(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(process_cpu_secs(std::process::id()).is_some());
    }
}
