//! `sinfo` per node: the `/status/{system}/nodes` listing.

use ironcrest_remote::{CommandError, CommandLine, Output, RemoteCommand};

use crate::{Node, NodeState};

const FORMAT: &str = "%z|%c|%O|%e|%f|%N|%o|%n|%T|%R|%w|%v|%m|%C";
const N_FIELDS: usize = 14;

/// Every node, one row per (node, partition), merged here into one [`Node`] each.
pub struct Nodes;

impl RemoteCommand for Nodes {
    type Parsed = Vec<Node>;
    type Error = CommandError;

    fn command_line(&self) -> CommandLine {
        CommandLine::builder("sinfo")
            .word("-a")
            .word("-N")
            .word("--noheader")
            .option("--format", FORMAT)
            .expect("a constant format has no NUL")
            .build()
    }

    fn parse(&self, output: Output) -> Result<Vec<Node>, CommandError> {
        if output.exit_status != 0 {
            return Err(CommandError::failed(&output));
        }
        let mut nodes: Vec<Node> = Vec::new();
        for line in output
            .stdout_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let node = parse_row(line)?;
            match nodes.iter_mut().find(|n| n.name == node.name) {
                Some(existing) => {
                    let partitions = existing.partitions.get_or_insert_with(Vec::new);
                    for partition in node.partitions.into_iter().flatten() {
                        if !partitions.contains(&partition) {
                            partitions.push(partition);
                        }
                    }
                }
                None => nodes.push(node),
            }
        }
        Ok(nodes)
    }

    fn examples() -> Vec<Self> {
        vec![Self]
    }
}

fn parse_row(line: &str) -> Result<Node, CommandError> {
    let fields: Vec<&str> = line.split('|').map(str::trim).collect();
    if fields.len() != N_FIELDS {
        return Err(unexpected(format!(
            "expected {N_FIELDS} fields, got {}: {line:?}",
            fields.len()
        )));
    }
    let mut socket_core_thread = fields[0].split(':').map(|n| n.parse::<u32>().ok());
    let (sockets, cores, threads) = (
        socket_core_thread.next().flatten(),
        socket_core_thread.next().flatten(),
        socket_core_thread.next().flatten(),
    );
    let cpus = fields[1]
        .parse()
        .map_err(|_| unexpected(format!("invalid CPU count {:?}", fields[1])))?;
    // %C is "allocated/idle/other/total".
    let mut cpu_states = fields[13].split('/').map(|n| n.parse::<u32>().ok());
    let (alloc_cpus, idle_cpus) = (cpu_states.next().flatten(), cpu_states.next().flatten());
    Ok(Node {
        sockets,
        cores,
        threads,
        cpus,
        cpu_load: fields[2].parse().ok(),
        free_memory: fields[3].parse().ok(),
        features: present(fields[4]).map(|f| f.split(',').map(String::from).collect()),
        name: fields[5].to_string(),
        address: present(fields[6]).map(String::from),
        hostname: present(fields[7]).map(String::from),
        state: fields[8].split('+').map(node_state).collect(),
        partitions: present(fields[9]).map(|p| vec![p.to_string()]),
        weight: fields[10].parse().ok(),
        // sinfo's %m is the node's configured memory; its allocated memory is not in this format.
        alloc_memory: None,
        alloc_cpus,
        idle_cpus,
    })
}

fn present(field: &str) -> Option<&str> {
    Some(field).filter(|f| !f.is_empty() && *f != "(null)" && *f != "N/A")
}

/// Maps Slurm's long state names (with their `*~#!%$@^-` suffix flags) to FirecREST's.
pub(crate) fn node_state(raw: &str) -> NodeState {
    let state = raw
        .trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-'])
        .to_ascii_lowercase();
    match state.as_str() {
        "idle" => NodeState::Idle,
        "alloc" | "allocated" => NodeState::Allocated,
        "mix" | "mixed" => NodeState::Mixed,
        "down" | "fail" | "failing" | "futr" | "future" | "unk" => NodeState::Down,
        "drain" | "drained" | "draining" | "drng" => NodeState::Drain,
        "maint" => NodeState::Offline,
        "resv" | "reserved" => NodeState::Reserved,
        "comp" | "completing" => NodeState::Completing,
        "pow_dn" | "powered_down" | "powering_down" | "power_down" => NodeState::PoweringDown,
        "pow_up" | "powering_up" | "power_up" => NodeState::PoweringUp,
        "busy" => NodeState::Busy,
        _ => NodeState::Unknown,
    }
}

fn unexpected(detail: String) -> CommandError {
    CommandError::UnexpectedOutput {
        command: "sinfo",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fixtures;

    #[test]
    fn command_line_matches_the_captured_one() {
        let fixture = fixtures::slurm("sinfo_nodes");
        assert_eq!(Nodes.command_line().to_string(), fixture.command);
    }

    #[test]
    fn idle_cluster_nodes_are_merged_across_partitions() {
        let nodes = Nodes.parse(fixtures::slurm("sinfo_nodes").output).unwrap();
        assert_eq!(nodes.len(), 1);
        let node = &nodes[0];
        assert_eq!(node.name, "localhost");
        assert_eq!(node.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            (node.sockets, node.cores, node.threads),
            (Some(1), Some(2), Some(1))
        );
        assert_eq!(node.cpus, 2);
        assert_eq!(
            node.partitions.as_deref(),
            Some(&["normal".to_string(), "debug".to_string()][..])
        );
        assert_eq!(node.alloc_cpus.unwrap() + node.idle_cpus.unwrap(), 2);
    }

    #[test]
    fn a_busy_node_reports_allocated_cpus() {
        let nodes = Nodes
            .parse(fixtures::slurm("sinfo_nodes_busy").output)
            .unwrap();
        assert!(nodes[0].alloc_cpus.unwrap() >= 1, "{:?}", nodes[0]);
        assert!(
            !nodes[0].state.contains(&NodeState::Idle),
            "{:?}",
            nodes[0].state
        );
    }

    #[test]
    fn synthetic_rows_cover_states_and_missing_values() {
        let output = Output {
            stdout: b"2:8:2|32|N/A|N/A|(null)|nid001|nid001|nid001|drained*|debug|1|22.05.8|64000|0/0/32/32\n\
                      2:8:2|32|1.50|1200|gpu,a100|nid002|10.0.0.2|nid002|mixed|normal|10|22.05.8|64000|16/16/0/32\n"
                .to_vec(),
            ..Output::default()
        };
        let nodes = Nodes.parse(output).unwrap();
        assert_eq!(nodes[0].state, vec![NodeState::Drain]);
        assert_eq!(nodes[0].cpu_load, None);
        assert_eq!(nodes[0].features, None);
        assert_eq!(nodes[1].state, vec![NodeState::Mixed]);
        assert_eq!(nodes[1].features, Some(vec!["gpu".into(), "a100".into()]));
        assert_eq!(nodes[1].free_memory, Some(1200));
        assert_eq!(
            (nodes[1].alloc_cpus, nodes[1].idle_cpus),
            (Some(16), Some(16))
        );
    }

    #[test]
    fn a_short_row_is_an_error_not_a_panic() {
        let output = Output {
            stdout: b"1:2:1|2|oops\n".to_vec(),
            ..Output::default()
        };
        assert!(matches!(
            Nodes.parse(output),
            Err(CommandError::UnexpectedOutput { .. })
        ));
    }

    #[test]
    fn state_names_map_with_flags_stripped() {
        for (raw, expected) in [
            ("idle", NodeState::Idle),
            ("idle~", NodeState::Idle),
            ("allocated", NodeState::Allocated),
            ("down*", NodeState::Down),
            ("reserved", NodeState::Reserved),
            ("maint", NodeState::Offline),
            ("completing", NodeState::Completing),
            ("weird", NodeState::Unknown),
        ] {
            assert_eq!(node_state(raw), expected, "{raw}");
        }
    }
}
