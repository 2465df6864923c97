use super::*;

fn known_hosts_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "[127.0.0.1]:2222 ssh-ed25519 AAAA\n").unwrap();
    file
}

fn valid_yaml(known_hosts: &Path) -> String {
    format!(
        r#"
server: {{listen: "127.0.0.1:8123"}}
auth:
  authentication:
    token_url: http://127.0.0.1:8091/token
    public_certs: [http://127.0.0.1:8091/jwks]
    username_claim: username
    audiences: [urn:ironcrest]
ssh_credentials:
  type: SSHCertificateAuthority
  ca_private_key: "-----BEGIN OPENSSH PRIVATE KEY-----"
clusters:
  - name: Cluster-A
    ssh:
      host: 127.0.0.1
      port: 2222
      known_hosts: {known_hosts}
      timeout: {{command_execution: 5, idle_timeout: 60}}
    scheduler: {{type: slurm, version: "22.05.8"}}
    service_account: {{client_id: health, secret: s3cret}}
    probing: {{interval_check: 30, services: {{ssh: {{timeout: 5}}, scheduler: {{timeout: 5}}}}}}
    file_systems: [{{path: "/home//", data_type: users, default_work_dir: true}}]
    data_operation:
      max_ops_file_size: 1048576
      data_transfer:
        service_type: s3
        name: s3
        private_url: http://127.0.0.1:9000
        public_url: http://127.0.0.1:9000
        access_key_id: key
        secret_access_key: secret
        region: us-east-1
        ttl: 600
        multipart: {{max_part_size: 5242880}}
"#,
        known_hosts = known_hosts.display()
    )
}

#[test]
fn the_optional_sections_default_when_left_out() {
    let known_hosts = known_hosts_file();
    let config = Config::from_yaml(&valid_yaml(known_hosts.path())).unwrap();
    assert!(!config.ui.enabled);
    assert_eq!(config.v1, V1Config::default());
    assert!(config.v1.enabled);
    assert_eq!(config.v1.prefix, "/v1");
    let moved = valid_yaml(known_hosts.path()) + "v1: {prefix: /status}\n";
    let problems = Config::from_yaml(&moved).unwrap_err().problems();
    assert_eq!(problems[0].field, "v1.prefix", "{problems:?}");
}

#[test]
fn a_valid_configuration_loads_and_is_normalised() {
    let known_hosts = known_hosts_file();
    let config = Config::from_yaml(&valid_yaml(known_hosts.path())).unwrap();
    assert_eq!(config.server.listen.port(), 8123);
    let cluster = config
        .cluster("CLUSTER-a")
        .expect("case-insensitive lookup");
    assert_eq!(cluster.name, "cluster-a");
    assert_eq!(cluster.file_systems[0].path, "/home");
    assert_eq!(cluster.probing.interval, 30);
    assert!(
        cluster
            .probing
            .services
            .contains_key(&ProbedService::Scheduler)
    );
    assert_eq!(cluster.ssh.max_sessions_per_connection, 10);
    assert_eq!(config.auth.authentication.min_token_ttl, 30);
}

#[test]
fn a_type_error_names_its_field() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path()).replace("port: 2222", "port: twenty");
    let err = Config::from_yaml(&yaml).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "clusters[0].ssh.port");
}

#[test]
fn unknown_keys_are_rejected() {
    let known_hosts = known_hosts_file();
    let yaml = format!("{}\nsurprise: 1\n", valid_yaml(known_hosts.path()));
    let err = Config::from_yaml(&yaml).unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let yaml = valid_yaml(Path::new("/nonexistent/known_hosts"))
        .replace(
            "token_url: http://127.0.0.1:8091/token",
            "token_url: ftp://x",
        )
        .replace("idle_timeout: 60", "idle_timeout: 2")
        .replace("path: \"/home//\"", "path: relative/dir")
        .replace("max_part_size: 5242880", "max_part_size: 100");
    let problems = Config::from_yaml(&yaml).unwrap_err().problems();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for expected in [
        "auth.authentication.token_url",
        "clusters[0].ssh.known_hosts",
        "clusters[0].ssh.timeout.idle_timeout",
        "clusters[0].file_systems[0].path",
        "clusters[0].data_operation.data_transfer.multipart.max_part_size",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
}

#[test]
fn rest_mode_requires_an_api_url_and_version() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path()).replace(
        "{type: slurm, version: \"22.05.8\"}",
        "{type: slurm, version: \"22.05.8\", connection_mode: rest}",
    );
    let problems = Config::from_yaml(&yaml).unwrap_err().problems();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "clusters[0].scheduler.api_url",
            "clusters[0].scheduler.api_version"
        ]
    );
}

#[test]
fn an_enabled_ui_needs_its_client_and_redirect_url() {
    let known_hosts = known_hosts_file();
    let valid = valid_yaml(known_hosts.path());
    let off = Config::from_yaml(&valid).unwrap();
    assert!(!off.ui.enabled);
    let problems = Config::from_yaml(&format!(
        "{valid}ui: {{enabled: true, redirect_url: /ui/callback}}\n"
    ))
    .unwrap_err()
    .problems();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "ui.client_id",
            "ui.client_secret",
            "ui.redirect_url",
            "ui.issuer"
        ]
    );
    let ui = "ui: {enabled: true, client_id: c, client_secret: s, issuer: http://idp, \
              redirect_url: https://hpc.example/ui/callback}\n";
    let on = Config::from_yaml(&format!("{valid}{ui}")).unwrap();
    assert_eq!(on.ui.client_secret.unwrap().expose(), "s");
    assert_eq!(on.ui.idle_timeout, 3600);
}

#[test]
fn paths_normalise_like_python_normpath() {
    for (input, expected) in [
        ("/home", "/home"),
        ("/home/", "/home"),
        ("//home//user/./x", "/home/user/x"),
        ("/home/../etc", "/etc"),
        ("/../..", "/"),
        ("/", "/"),
        ("a/../..", ".."),
    ] {
        assert_eq!(normalise_path(input), expected, "{input}");
    }
}

#[test]
fn s3_probing_needs_an_s3_data_transfer() {
    let known_hosts = known_hosts_file();
    let yaml =
        valid_yaml(known_hosts.path()).replace("scheduler: {timeout: 5}", "storage: {timeout: 5}");
    Config::from_yaml(&yaml).expect("probing the configured S3 store is valid");
    let without_s3 = yaml.replace("service_type: s3", "service_type: wormhole");
    let without_s3 = without_s3
        .split("        name: s3")
        .next()
        .unwrap()
        .to_string();
    let problems = Config::from_yaml(&without_s3).unwrap_err().problems();
    assert_eq!(problems[0].field, "clusters[0].probing.services.s3");
}

#[test]
fn presigned_url_lifetimes_stay_within_the_sigv4_limit() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path()).replace("ttl: 600", "ttl: 604801");
    let problems = Config::from_yaml(&yaml).unwrap_err().problems();
    assert_eq!(
        problems[0].field,
        "clusters[0].data_operation.data_transfer.ttl"
    );
}

#[test]
fn the_jobs_cache_age_defaults_to_half_a_second_and_is_bounded() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path());
    let config = Config::from_yaml(&yaml).unwrap();
    assert_eq!(config.clusters[0].scheduler.jobs_cache_max_age, 0.5);
    for (value, ok) in [("0", true), ("2.5", true), ("-1", false), ("61", false)] {
        let edited = yaml.replace(
            "{type: slurm, version: \"22.05.8\"}",
            &format!("{{type: slurm, version: \"22.05.8\", jobs_cache_max_age: {value}}}"),
        );
        match Config::from_yaml(&edited) {
            Ok(config) => {
                assert!(ok, "{value} accepted");
                assert_eq!(
                    config.clusters[0].scheduler.jobs_cache_max_age,
                    value.parse::<f64>().unwrap()
                );
            }
            Err(err) => {
                assert!(!ok, "{value} refused: {err}");
                let fields: Vec<String> = err.problems().into_iter().map(|p| p.field).collect();
                assert_eq!(fields, ["clusters[0].scheduler.jobs_cache_max_age"]);
            }
        }
    }
}

/// What tests that edit a configuration as the model rely on: written out, it loads back
/// the same (secrets given literally need the `test-support` feature to be written).
#[cfg(feature = "test-support")]
#[test]
fn a_configuration_written_as_yaml_loads_back_the_same() {
    let known_hosts = known_hosts_file();
    let config = Config::from_yaml(&valid_yaml(known_hosts.path())).unwrap();
    let yaml = serde_yaml_ng::to_string(&config).unwrap();
    let back = Config::from_yaml(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    assert_eq!(format!("{back:?}"), format!("{config:?}"));
    assert_eq!(back.clusters[0].service_account.secret.expose(), "s3cret");
    assert_eq!(serde_yaml_ng::to_string(&back).unwrap(), yaml);

    let mut streamer = config.clone();
    streamer.clusters[0].data_operation.data_transfer =
        Some(DataTransferConfig::Streamer(StreamerConfig::default()));
    let yaml = serde_yaml_ng::to_string(&streamer).unwrap();
    let back: Config = serde_yaml_ng::from_str(&yaml).unwrap();
    assert!(matches!(
        back.clusters[0].data_operation.data_transfer,
        Some(DataTransferConfig::Streamer(StreamerConfig {
            port_range: (5665, 5675),
            ..
        }))
    ));
}

#[cfg(not(feature = "test-support"))]
#[test]
fn a_configuration_with_literal_secrets_is_not_written_out() {
    let known_hosts = known_hosts_file();
    let config = Config::from_yaml(&valid_yaml(known_hosts.path())).unwrap();
    let err = serde_yaml_ng::to_string(&config).unwrap_err().to_string();
    assert!(
        !err.contains("s3cret") && !err.contains("BEGIN OPENSSH"),
        "{err}"
    );
}

#[test]
fn authorization_takes_v2s_keys_and_openfgas_and_checks_them() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path());
    let with = |section: &str| {
        yaml.replace(
            "    audiences: [urn:ironcrest]\n",
            &format!("    audiences: [urn:ironcrest]\n  authorization: {section}\n"),
        )
    };
    // FirecREST v2's section as it is.
    let config = Config::from_yaml(&with(
        "{url: 'https://fga.example/check', timeout: 2, max_connections: 10}",
    ))
    .unwrap();
    let authz = config.auth.authorization.unwrap();
    assert_eq!((authz.timeout, authz.max_connections), (2, 10));
    assert_eq!(
        (authz.relation.as_str(), authz.object_type.as_str()),
        ("member", "vcluster")
    );
    assert_eq!(authz.cache_ttl, 10.0);
    assert!(authz.store_id.is_none());

    let problems = Config::from_yaml(&with(
        "{url: fga, timeout: 0, cache_ttl: -1, cache_size: 0, relation: 'a b', authorization_model_id: M}",
    ))
    .unwrap_err()
    .problems();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "auth.authorization.url",
            "auth.authorization.timeout",
            "auth.authorization.cache_ttl",
            "auth.authorization.cache_size",
            "auth.authorization.relation",
            "auth.authorization.authorization_model_id",
        ]
    );
}

#[test]
fn metrics_are_on_by_default_and_a_separate_listener_must_differ_from_the_api() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path());
    let config = Config::from_yaml(&yaml).unwrap();
    let metrics = &config.telemetry.metrics;
    assert!(metrics.enabled && metrics.listen.is_none() && !metrics.per_user_series);

    let separate = format!("{yaml}telemetry: {{metrics: {{listen: \"127.0.0.1:9464\"}}}}\n");
    let config = Config::from_yaml(&separate).unwrap();
    assert_eq!(config.telemetry.metrics.listen.unwrap().port(), 9464);

    let clash = format!("{yaml}telemetry: {{metrics: {{listen: \"127.0.0.1:8123\"}}}}\n");
    let fields: Vec<String> = Config::from_yaml(&clash)
        .unwrap_err()
        .problems()
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(fields, ["telemetry.metrics.listen"]);
}

#[test]
fn load_shedding_is_on_by_default_and_its_answer_is_checked() {
    let known_hosts = known_hosts_file();
    let yaml = valid_yaml(known_hosts.path());
    let config = Config::from_yaml(&yaml).unwrap();
    assert_eq!(
        config.gateway.limits.overload,
        OverloadLimit {
            max_in_flight: 256,
            max_queued: 1024,
            queue_timeout: 5.0,
            retry_after: 1,
            status: 503,
        }
    );

    let off = format!("{yaml}gateway: {{limits: {{overload: {{max_in_flight: 0}}}}}}\n");
    let config = Config::from_yaml(&off).unwrap();
    assert_eq!(config.gateway.limits.overload.max_in_flight, 0);
    assert_eq!(config.gateway.limits.overload.max_queued, 1024);

    let bad = format!(
        "{yaml}gateway: {{limits: {{overload: {{queue_timeout: -1, retry_after: 0, status: 500}}}}}}\n"
    );
    let fields: Vec<String> = Config::from_yaml(&bad)
        .unwrap_err()
        .problems()
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(
        fields,
        [
            "gateway.limits.overload.queue_timeout",
            "gateway.limits.overload.retry_after",
            "gateway.limits.overload.status",
        ]
    );
}
