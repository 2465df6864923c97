//! The status API against the real cluster.

use crate::harness::{SYSTEM, TestServer, user_token};

#[tokio::test]
async fn systems_list_the_cluster_with_every_probed_service_healthy() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let health = server
        .wait_for_health(&token, |health| health.iter().all(|h| h["healthy"] == true))
        .await;
    let mut services: Vec<&str> = health
        .iter()
        .map(|h| h["serviceType"].as_str().unwrap())
        .collect();
    services.sort();
    assert_eq!(services, ["filesystem", "s3", "scheduler", "ssh"]);
    let filesystem = health
        .iter()
        .find(|h| h["serviceType"] == "filesystem")
        .unwrap();
    assert_eq!(filesystem["path"], "/home");

    let response = server.get("/status/systems", Some(&token)).await;
    assert_eq!(response.headers()["f7t-appversion"], "2.6.0");
    assert!(
        response.headers()["f7t-timestamp"]
            .to_str()
            .unwrap()
            .parse::<f64>()
            .is_ok()
    );
    assert_eq!(response.headers()["x-request-id"].len(), 32);
    let body: serde_json::Value = response.json().await.unwrap();
    let system = &body["systems"][0];
    assert_eq!(system["name"], SYSTEM);
    assert_eq!(system["ssh"]["port"], 2222);
    assert_eq!(system["scheduler"]["type"], "slurm");
    assert_eq!(system["dataOperation"]["max_ops_file_size"], 5242880);
    assert!(system["lastHealthCheck"].as_str().unwrap().ends_with('Z'));
    assert!(system.get("serviceAccount").is_none());
}

#[tokio::test]
async fn partitions_nodes_and_reservations_come_from_slurm() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let partitions = server
        .get_json(&format!("/status/{SYSTEM}/partitions"), &token)
        .await;
    let names: Vec<&str> = partitions["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["normal", "debug"]);
    assert_eq!(partitions["partitions"][0]["partition"], "UP");

    let nodes = server
        .get_json(&format!("/status/{SYSTEM}/nodes"), &token)
        .await;
    let node = &nodes["nodes"][0];
    assert_eq!(node["name"], "localhost");
    assert_eq!(node["cpus"], 2);
    assert!(node["state"].as_array().unwrap().len() == 1);

    let reservations = server
        .get_json(&format!("/status/{SYSTEM}/reservations"), &token)
        .await;
    let reservation = reservations["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fire_resv")
        .expect("the dev reservation");
    assert_eq!(reservation["nodeList"], "localhost");
    assert_eq!(reservation["state"], "active");
    assert!(reservation["endTime"].as_i64().unwrap() > reservation["startTime"].as_i64().unwrap());
}

#[tokio::test]
async fn userinfo_is_the_token_user_with_groups_and_accounts() {
    let server = TestServer::start().await;
    let token = user_token().await;
    // System names are case-insensitive, and so is the whole path.
    let info = server
        .get_json(
            &format!("/STATUS/{}/userinfo", SYSTEM.to_uppercase()),
            &token,
        )
        .await;
    assert_eq!(info["user"]["name"], "fireuser");
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(groups.contains(&"hpcusers"), "{groups:?}");
    // API 2.6.0: the primary group is the one marked default, and also `group`.
    let defaults: Vec<&serde_json::Value> = info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["default"] == true)
        .collect();
    assert_eq!(defaults.len(), 1, "{info}");
    assert_eq!(info["group"]["name"], defaults[0]["name"]);
    assert_eq!(info["group"]["id"], defaults[0]["id"]);
    let mut accounts: Vec<(String, bool)> = info["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["default"].as_bool().unwrap(),
            )
        })
        .collect();
    accounts.sort();
    // The dev environment's Slurm accounts of fireuser: one per Unix group (for the UI's
    // account choice), project1, and staff as the default.
    let expected: Vec<(String, bool)> = [
        ("fireuser", false),
        ("hpcusers", false),
        ("project1", false),
        ("staff", true),
    ]
    .into_iter()
    .map(|(name, default)| (name.to_string(), default))
    .collect();
    assert_eq!(accounts, expected);
}

#[tokio::test]
async fn unknown_systems_routes_and_methods_get_firecrest_errors() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let response = server.get("/status/nosuchsystem/nodes", Some(&token)).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "System not found");
    assert_eq!(body["errorType"], "error");
    assert_eq!(body["user"], "fireuser");

    let response = server.get("/no/such/route", Some(&token)).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["message"],
        "Not Found"
    );

    let response = server
        .http
        .delete(format!("{}/status/systems", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    let response = server
        .get(
            &format!("/status/{SYSTEM}/partitions?show_hidden=maybe"),
            Some(&token),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["errorType"],
        "validation"
    );
}

#[tokio::test]
async fn liveness_needs_no_token_and_reports_health_runs() {
    let server = TestServer::start().await;
    let token = user_token().await;
    server.wait_for_health(&token, |_| true).await;
    let response = server.get("/status/liveness/", None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["healthcheckRuns"][SYSTEM].is_string());
    assert!(body["lastUpdate"].as_i64().unwrap() >= 0);

    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/status/liveness", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 307);
}

#[tokio::test]
async fn docs_and_openapi_are_served_without_a_token() {
    let server = TestServer::start().await;
    let openapi: serde_json::Value = server
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/status/systems"].is_object());
    let docs = server.get("/docs/", None).await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let redoc = server.get("/redoc", None).await.text().await.unwrap();
    assert!(redoc.contains("/redoc/redoc.standalone.js") && !redoc.contains("https://"));
    let bundle = server.get("/redoc/redoc.standalone.js", None).await;
    assert_eq!(bundle.status(), 200);
}
