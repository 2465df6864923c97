//! Slurm's one-line `Key=Value Key=Value` records (`scontrol -o`).

use std::collections::HashMap;

/// Splits one `scontrol -o` line into its fields. Values never contain spaces in the
/// records we read (names, states, counts, epoch times, node lists).
pub fn parse_record(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect()
}

/// Slurm prints `(null)` or nothing for an unset value.
pub fn non_null(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty() && *v != "(null)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_on_the_first_equals_sign() {
        let record =
            parse_record("PartitionName=normal TRES=cpu=2,mem=4G State=UP Features=(null)");
        assert_eq!(record["PartitionName"], "normal");
        assert_eq!(record["TRES"], "cpu=2,mem=4G");
        assert_eq!(non_null(record.get("Features").copied()), None);
        assert_eq!(non_null(record.get("State").copied()), Some("UP"));
    }
}
