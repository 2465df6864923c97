//! `#SBATCH` directives for slurmrestd, which does not read them from the script (sbatch
//! does). The leading directives are read as sbatch would (up to the first command) and
//! turned into `job/submit` fields; the request's own fields win, as sbatch's command line
//! wins over the script. An option this reader does not know is refused rather than
//! silently dropped.

use serde_json::{Map, Value, json};

use super::ApiVersion;

/// The directives' fields, or the message of a 400.
pub fn fields(script: &str, version: ApiVersion) -> Result<Map<String, Value>, String> {
    let mut fields = Map::new();
    for (index, line) in script.lines().enumerate() {
        let line = line.trim();
        if index == 0 && line.starts_with("#!") {
            continue;
        }
        if line.is_empty() || (line.starts_with('#') && !line.starts_with("#SBATCH")) {
            continue;
        }
        let Some(rest) = line.strip_prefix("#SBATCH") else {
            break;
        };
        // A trailing comment ends the directive, as in sbatch.
        let rest = rest.split(" #").next().unwrap_or_default().trim();
        let words = shlex::split(rest).ok_or_else(|| format!("Cannot read {line:?}."))?;
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            let (option, value) = split_option(&word, &mut words)
                .ok_or_else(|| format!("Cannot read {line:?}: {word:?} is not an option."))?;
            let (key, value) = field(&option, &value, version).ok_or_else(|| {
                format!(
                    "#SBATCH {option} is not supported through slurmrestd; give it as a job field or use connection_mode ssh or hybrid with a scriptPath."
                )
            })?;
            fields.insert(key.to_string(), value?);
        }
    }
    Ok(fields)
}

/// `--opt=v`, `--opt v`, `-o v` or `-ov` → (canonical long name, value).
fn split_option(word: &str, rest: &mut impl Iterator<Item = String>) -> Option<(String, String)> {
    if let Some(long) = word.strip_prefix("--") {
        return Some(match long.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (long.to_string(), rest.next().unwrap_or_default()),
        });
    }
    let short = word.strip_prefix('-')?;
    let mut chars = short.chars();
    let letter = chars.next()?;
    let long = match letter {
        'p' => "partition",
        'J' => "job-name",
        'A' => "account",
        'o' => "output",
        'e' => "error",
        'i' => "input",
        'C' => "constraint",
        't' => "time",
        'n' => "ntasks",
        'c' => "cpus-per-task",
        'N' => "nodes",
        other => return Some((format!("-{other}"), String::new())),
    };
    let attached: String = chars.collect();
    let value = if attached.is_empty() {
        rest.next().unwrap_or_default()
    } else {
        attached
    };
    Some((long.to_string(), value))
}

type Field = (&'static str, Result<Value, String>);

fn field(option: &str, value: &str, version: ApiVersion) -> Option<Field> {
    let text = |key: &'static str| Some((key, Ok(json!(value))));
    let count = |key: &'static str| {
        Some((
            key,
            value
                .parse::<u32>()
                .map(|n| json!(n))
                .map_err(|_| format!("#SBATCH --{option}={value} is not a number.")),
        ))
    };
    match option {
        "partition" => text("partition"),
        "job-name" => text("name"),
        "account" => text("account"),
        "reservation" => text("reservation"),
        "output" => text("standard_output"),
        "error" => text("standard_error"),
        "input" => text("standard_input"),
        "constraint" => text("constraints"),
        "ntasks" => count("tasks"),
        "cpus-per-task" => count("cpus_per_task"),
        "nodes" => count("minimum_nodes"),
        "time" => Some((
            "time_limit",
            minutes(value)
                .map(|m| {
                    if version >= ApiVersion::V0040 {
                        json!({"set": true, "infinite": false, "number": m})
                    } else {
                        json!(m)
                    }
                })
                .ok_or_else(|| format!("#SBATCH --time={value} is not a Slurm time.")),
        )),
        _ => None,
    }
}

/// sbatch's time formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S` → minutes
/// (seconds round up, as Slurm does).
fn minutes(value: &str) -> Option<u64> {
    let (days, clock) = match value.split_once('-') {
        Some((days, clock)) => (Some(days.parse::<u64>().ok()?), clock),
        None => (None, value),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let seconds = match (days.is_some(), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (_, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some((days.unwrap_or(0) * 86400 + seconds).div_ceil(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_directives_become_fields() {
        let script = "#!/bin/bash\n# a comment\n#SBATCH --partition=debug -J 'my job'\n#SBATCH -A proj --time 1-02:03:04 # why\n#SBATCH -n4 --output=/o\necho\n#SBATCH --partition=ignored\n";
        let fields = fields(script, ApiVersion::V0038).unwrap();
        assert_eq!(fields["partition"], "debug");
        assert_eq!(fields["name"], "my job");
        assert_eq!(fields["account"], "proj");
        assert_eq!(fields["time_limit"], 24 * 60 + 2 * 60 + 4);
        assert_eq!(fields["tasks"], 4);
        assert_eq!(fields["standard_output"], "/o");
        let newer = super::fields("#SBATCH -t 30\n", ApiVersion::V0041).unwrap();
        assert_eq!(newer["time_limit"]["number"], 30);
    }

    #[test]
    fn unknown_or_malformed_directives_are_refused() {
        for script in [
            "#SBATCH --gres=gpu:1\n",
            "#SBATCH -G 1\n",
            "#SBATCH --ntasks=many\n",
            "#SBATCH --time=soon\n",
            "#SBATCH 'unterminated\n",
        ] {
            assert!(fields(script, ApiVersion::V0038).is_err(), "{script}");
        }
    }

    #[test]
    fn times_in_minutes() {
        assert_eq!(minutes("30"), Some(30));
        assert_eq!(minutes("1:30"), Some(2));
        assert_eq!(minutes("2:00:00"), Some(120));
        assert_eq!(minutes("1-0"), Some(1440));
        assert_eq!(minutes("1-1:30"), Some(1530));
        assert_eq!(minutes("x"), None);
    }
}
