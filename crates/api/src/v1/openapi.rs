//! The v1 OpenAPI document, `<prefix>/openapi.json`, with Swagger UI at `<prefix>/docs` and
//! ReDoc at `<prefix>/redoc`. Its operations come from [`OPERATIONS`], one row per route,
//! which the router tests hold against what the router serves.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    Required, Type,
};
use utoipa_swagger_ui::SwaggerUi;

use super::error::{HEADERS, TIMEOUT, V1ErrorBody};
use super::tasks::{STATUSES, TaskCreated, TaskResponse, TaskView, TasksResponse};
use super::{MACHINE_HEADER, V1_VERSION, status};

/// A request parameter or form field: name, required, description.
type Field = (&'static str, bool, &'static str);

/// What a v1 operation answers when it succeeds.
#[derive(Clone, Copy)]
pub enum Answer {
    /// `{"description", "output"}` with this status.
    Output(u16),
    /// A task (`{"success", "task_id", "task_url"}`), with this status.
    Task(u16),
    /// A named schema, with this status.
    Schema(u16, &'static str),
    /// The file's bytes.
    Bytes,
    /// 204, no body.
    Empty,
}

/// One v1 route as the document describes it.
pub struct Operation {
    pub method: &'static str,
    /// Under the prefix, with `{parameters}`.
    pub path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Whether the system is named by `X-Machine-Name`.
    machine: bool,
    query: &'static [Field],
    form: &'static [Field],
    /// The multipart `file` part's description, for the routes that take a file.
    file: Option<&'static str>,
    answer: Answer,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    answer: Answer,
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        machine: true,
        query: &[],
        form: &[],
        file: None,
        answer,
    }
}

impl Operation {
    const fn query(mut self, query: &'static [Field]) -> Self {
        self.query = query;
        self
    }

    const fn form(mut self, form: &'static [Field]) -> Self {
        self.form = form;
        self
    }

    const fn file(mut self, file: &'static str) -> Self {
        self.file = Some(file);
        self
    }

    /// A route on no system (`/status`, `/tasks`).
    const fn global(mut self) -> Self {
        self.machine = false;
        self
    }
}

const TARGET: Field = (
    "targetPath",
    true,
    "An absolute path under one of the system's file systems.",
);
const SOURCE: Field = (
    "sourcePath",
    true,
    "An absolute path under one of the system's file systems.",
);
const ACCOUNT: Field = (
    "account",
    false,
    "The scheduler account to charge; the system's default if absent.",
);
const PAGE: [Field; 2] = [
    (
        "pageSize",
        false,
        "Entries per page (25 by default), with pageNumber.",
    ),
    (
        "pageNumber",
        false,
        "The page, from 0; all entries without it.",
    ),
];
const JOBS: Field = (
    "jobs",
    false,
    "Comma-separated job ids; the caller's jobs if absent.",
);
const TRANSFER: [Field; 5] = [
    SOURCE,
    (
        "targetPath",
        true,
        "The destination: an absolute path under one of the system's file systems.",
    ),
    (
        "jobName",
        false,
        "Not used: transfer jobs keep Ironcrest's names (they mark them as transfers).",
    ),
    (
        "time",
        false,
        "The job's time limit (Slurm: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`, `days-hours:minutes:seconds`).",
    ),
    (
        "stageOutJobId",
        false,
        "Start the transfer once this job has completed successfully.",
    ),
];

/// Every v1 route.
pub const OPERATIONS: &[Operation] = &[
    op("get", "/status/services", "status", "The services and their status", Answer::Schema(200, "ServicesResponse")).global(),
    op("get", "/status/services/{servicename}", "status", "One service", Answer::Schema(200, "Service")).global(),
    op("get", "/status/systems", "status", "The systems and their status", Answer::Schema(200, "SystemsResponse")).global(),
    op("get", "/status/systems/{machinename}", "status", "One system", Answer::Schema(200, "SystemResponse")).global(),
    op("get", "/status/filesystems", "status", "Every system's file systems", Answer::Schema(200, "FilesystemsResponse")).global(),
    op("get", "/status/filesystems/{machinename}", "status", "A system's file systems", Answer::Schema(200, "SystemFilesystemsResponse")).global(),
    op("get", "/status/parameters", "status", "The deployment's parameters (UTILITIES_MAX_FILE_SIZE, …)", Answer::Schema(200, "ParametersResponse")).global(),
    op("get", "/utilities/ls", "utilities", "List a directory", Answer::Output(200)).query(&[
        TARGET,
        ("showhidden", false, "Also entries whose names begin with `.`."),
        ("numericUid", false, "User and group ids instead of names."),
        ("recursive", false, "List subdirectories too."),
    ]),
    op("post", "/utilities/mkdir", "utilities", "Make a directory", Answer::Output(201)).form(&[
        TARGET,
        ("p", false, "Make missing parents too, and accept an existing directory."),
    ]),
    op("put", "/utilities/rename", "utilities", "Rename or move a file or directory (`mv`)", Answer::Output(200)).form(&[SOURCE, TARGET]),
    op("put", "/utilities/chmod", "utilities", "Change a file's mode", Answer::Output(200)).form(&[
        TARGET,
        ("mode", true, "An octal or symbolic mode, as `chmod` takes it."),
    ]),
    op("put", "/utilities/chown", "utilities", "Change a file's owner or group", Answer::Output(200)).form(&[
        TARGET,
        ("owner", false, "The new owner."),
        ("group", false, "The new group."),
    ]),
    op("post", "/utilities/copy", "utilities", "Copy a file or directory (`cp -dR --preserve=all`)", Answer::Output(201)).form(&[SOURCE, TARGET]),
    op("get", "/utilities/file", "utilities", "A file's type (`file`)", Answer::Output(200)).query(&[TARGET]),
    op("get", "/utilities/stat", "utilities", "A file's status (`stat`)", Answer::Output(200)).query(&[
        TARGET,
        ("dereference", false, "Follow a symbolic link."),
    ]),
    op("post", "/utilities/symlink", "utilities", "Make a symbolic link", Answer::Output(201)).form(&[
        ("targetPath", true, "What the link points to."),
        ("linkPath", true, "The link to make."),
    ]),
    op("get", "/utilities/head", "utilities", "The beginning of a file", Answer::Output(200)).query(&[
        TARGET,
        ("bytes", false, "This many bytes (with GNU suffixes: K, KB, M, MB, G, GB)."),
        ("lines", false, "This many lines (10 by default)."),
        ("skip_ending", false, "All but the last `bytes` or `lines`."),
    ]),
    op("get", "/utilities/tail", "utilities", "The end of a file", Answer::Output(200)).query(&[
        TARGET,
        ("bytes", false, "This many bytes (with GNU suffixes: K, KB, M, MB, G, GB)."),
        ("lines", false, "This many lines (10 by default)."),
        ("skip_beginning", false, "From byte or line `bytes`/`lines` on."),
    ]),
    op("get", "/utilities/download", "utilities", "A small file's bytes (at most UTILITIES_MAX_FILE_SIZE)", Answer::Bytes).query(&[SOURCE]),
    op("post", "/utilities/upload", "utilities", "Upload a small file (at most UTILITIES_MAX_FILE_SIZE; 413 past it)", Answer::Output(201))
        .form(&[("targetPath", true, "The directory the file is written into; send it before the file.")])
        .file("The file; its multipart `filename` names it in `targetPath`."),
    op("delete", "/utilities/rm", "utilities", "Remove a file or directory", Answer::Empty).form(&[TARGET]),
    op("get", "/utilities/checksum", "utilities", "A file's SHA-256", Answer::Output(200)).query(&[TARGET]),
    op("get", "/utilities/view", "utilities", "A small file's text (at most UTILITIES_MAX_FILE_SIZE)", Answer::Output(200)).query(&[TARGET]),
    op("get", "/utilities/whoami", "utilities", "The caller's user name, or with `groups` their ids and groups", Answer::Output(200)).query(&[
        ("groups", false, "The user's and groups' names and ids instead."),
    ]),
    op("post", "/utilities/compress", "utilities", "Make a gzipped tar archive", Answer::Output(201)).form(&[
        SOURCE,
        TARGET,
        ("dereference", false, "Archive what links point to."),
    ]),
    op("post", "/utilities/extract", "utilities", "Extract a tar archive", Answer::Output(201)).form(&[
        SOURCE,
        TARGET,
        ("extension", false, "`auto` (by the name), `.tar`, `.tgz`, `.gz`, `.bz2`, `.xz`; `.zip` is refused."),
    ]),
    op("post", "/compute/jobs/upload", "compute", "Submit a local batch script", Answer::Task(201))
        .form(&[ACCOUNT, ("env", false, "A JSON object of environment variables for the job.")])
        .file("The batch script; it runs in the user's directory on the default work file system."),
    op("post", "/compute/jobs/path", "compute", "Submit a batch script on the system (run in its directory)", Answer::Task(201)).form(&[
        ("targetPath", true, "The script: an absolute path."),
        ACCOUNT,
        ("env", false, "A JSON object of environment variables for the job."),
    ]),
    op("get", "/compute/jobs", "compute", "The caller's active jobs, or the named ones (a task)", Answer::Task(200)).query(&[JOBS, PAGE[0], PAGE[1]]),
    op("get", "/compute/jobs/{jobid}", "compute", "One job (a task)", Answer::Task(200)),
    op("delete", "/compute/jobs/{jobid}", "compute", "Cancel a job (a task)", Answer::Task(200)),
    op("get", "/compute/acct", "compute", "Accounting records (a task)", Answer::Task(200)).query(&[
        JOBS,
        ("starttime", false, "From (`YYYY-MM-DD[THH:MM[:SS]]`, `MM/DD[/YY][-HH:MM[:SS]]`, `HH:MM[:SS]`); today's midnight if absent."),
        ("endtime", false, "Until (same forms); now if absent."),
        PAGE[0],
        PAGE[1],
    ]),
    op("get", "/compute/nodes", "compute", "The nodes (a task)", Answer::Task(200)).query(&[("nodes", false, "Comma-separated node names.")]),
    op("get", "/compute/nodes/{nodename}", "compute", "One node (a task)", Answer::Task(200)),
    op("get", "/compute/partitions", "compute", "The partitions (a task)", Answer::Task(200)).query(&[("partitions", false, "Comma-separated partition names.")]),
    op("get", "/compute/reservations", "compute", "The reservations (a task)", Answer::Task(200)).query(&[("reservations", false, "Comma-separated reservation names.")]),
    op("post", "/storage/xfer-internal/rsync", "storage", "Synchronise with `rsync` as a job", Answer::Task(201)).form(&[TRANSFER[0], TRANSFER[1], TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT]),
    op("post", "/storage/xfer-internal/mv", "storage", "Move as a job", Answer::Task(201)).form(&[TRANSFER[0], TRANSFER[1], TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT]),
    op("post", "/storage/xfer-internal/cp", "storage", "Copy as a job", Answer::Task(201)).form(&[TRANSFER[0], TRANSFER[1], TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT]),
    op("post", "/storage/xfer-internal/rm", "storage", "Remove as a job", Answer::Task(201)).form(&[TARGET, TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT]),
    op("post", "/storage/xfer-internal/compress", "storage", "Make a gzipped tar archive as a job", Answer::Task(201)).form(&[
        TRANSFER[0], TRANSFER[1], TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT,
        ("dereference", false, "Archive what links point to."),
    ]),
    op("post", "/storage/xfer-internal/extract", "storage", "Extract a tar archive as a job", Answer::Task(201)).form(&[
        TRANSFER[0], TRANSFER[1], TRANSFER[2], TRANSFER[3], TRANSFER[4], ACCOUNT,
        ("extension", false, "`auto` (by the name), `.tar`, `.tgz`, `.gz`, `.bz2`, `.xz`."),
    ]),
    op("post", "/storage/xfer-external/upload", "storage", "Stage a local file into the system through S3 (a task)", Answer::Task(201)).form(&[
        ("sourcePath", true, "The local file's path (its name names the file on the system when targetPath is a directory)."),
        ("targetPath", true, "The file or directory to write to on the system."),
    ]),
    op("post", "/storage/xfer-external/download", "storage", "Stage a file of the system in S3 for download (a task)", Answer::Task(201)).form(&[SOURCE]),
    op("post", "/storage/xfer-external/invalidate", "storage", "Delete a staged download's object (its URL stops working)", Answer::Schema(201, "Invalidated")).global(),
    op("get", "/tasks", "tasks", "The caller's tasks (`tasks`: comma-separated ids)", Answer::Schema(200, "TasksResponse")).query(&[("tasks", false, "Comma-separated task ids; every recent task of the caller's if absent.")]).global(),
    op("get", "/tasks/{taskid}", "tasks", "One task", Answer::Schema(200, "TaskResponse")).global(),
    op("get", "/reservations", "reservations", "The scheduler's reservations", Answer::Schema(200, "ReservationsResponse")),
    op("post", "/reservations", "reservations", "Make a reservation (scheduler operators only)", Answer::Schema(201, "Success")).form(&[
        ("reservation", true, "Its name."),
        ("account", true, "The account it is for."),
        ("numberOfNodes", true, "How many nodes."),
        ("nodeType", false, "Node features the nodes must have."),
        ("starttime", true, "`YYYY-MM-DDTHH:MM:SS`"),
        ("endtime", true, "`YYYY-MM-DDTHH:MM:SS`"),
    ]),
    op("put", "/reservations/{reservation}", "reservations", "Change a reservation (scheduler operators only)", Answer::Schema(200, "Success")).form(&[
        ("account", true, "The account it is for."),
        ("numberOfNodes", true, "How many nodes."),
        ("nodeType", false, "Node features the nodes must have."),
        ("starttime", true, "`YYYY-MM-DDTHH:MM:SS`"),
        ("endtime", true, "`YYYY-MM-DDTHH:MM:SS`"),
    ]),
    op("delete", "/reservations/{reservation}", "reservations", "Delete a reservation (scheduler operators only)", Answer::Empty),
];

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn schema_ref(name: &str) -> Ref {
    Ref::from_schema_name(name)
}

/// `X-Error-Name` from `x-error-name`.
fn canonical(header: &str) -> String {
    header
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn operation(op: &Operation) -> utoipa::openapi::path::Operation {
    let id = format!(
        "v1_{}{}",
        op.method,
        op.path.replace(['/', '-', '{', '}'], "_")
    );
    let mut builder = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(op.summary))
        .tag(op.tag)
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    if op.machine {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("X-Machine-Name")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some("The system, as `/status/systems` lists it."))
                .schema(Some(string())),
        );
    }
    for name in op
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
    {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string())),
        );
    }
    for (name, required, description) in op.query {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(if *required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(*description))
                .schema(Some(string())),
        );
    }
    if op.path == "/storage/xfer-external/invalidate" {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("X-Task-Id")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some("The staged download's task id."))
                .schema(Some(string())),
        );
    }
    if !op.form.is_empty() || op.file.is_some() {
        let mut form = ObjectBuilder::new().schema_type(Type::Object);
        for (name, required, description) in op.form {
            form = form.property(*name, string().description(Some(*description)));
            if *required {
                form = form.required(*name);
            }
        }
        let content_type = match op.file {
            Some(description) => {
                form = form
                    .property(
                        "file",
                        string()
                            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                                utoipa::openapi::KnownFormat::Binary,
                            )))
                            .description(Some(description)),
                    )
                    .required("file");
                "multipart/form-data"
            }
            None => "application/x-www-form-urlencoded",
        };
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    content_type,
                    ContentBuilder::new().schema(Some(form)).build(),
                )
                .build(),
        ));
    }
    let json = |schema: Ref| ContentBuilder::new().schema(Some(schema)).build();
    let (status, success) = match op.answer {
        Answer::Output(status) => (
            status,
            ResponseBuilder::new()
                .description("`{\"description\", \"output\"}`")
                .content("application/json", json(schema_ref("Output"))),
        ),
        Answer::Task(status) => (
            status,
            ResponseBuilder::new()
                .description("A task: read it at `task_url` until its status is final.")
                .content("application/json", json(schema_ref("TaskCreated"))),
        ),
        Answer::Schema(status, name) => (
            status,
            ResponseBuilder::new()
                .description("Done.")
                .content("application/json", json(schema_ref(name))),
        ),
        Answer::Bytes => (
            200,
            ResponseBuilder::new()
                .description("The file's bytes.")
                .content(
                    "application/octet-stream",
                    ContentBuilder::new()
                        .schema(Some(string().format(Some(
                            utoipa::openapi::SchemaFormat::KnownFormat(
                                utoipa::openapi::KnownFormat::Binary,
                            ),
                        ))))
                        .build(),
                ),
        ),
        Answer::Empty => (204, ResponseBuilder::new().description("Done.")),
    };
    let mut refused = ResponseBuilder::new()
        .description(
            "Refused: v1's statuses (mostly 400; 401 without a valid token, 403 denied by the \
             gateway or the scheduler, 404 no such service, system or task, 413 an upload past \
             the limit), each with an error header naming the kind of failure where there is one.",
        )
        .content("application/json", json(schema_ref("V1ErrorBody")));
    for (name, text) in HEADERS {
        let described = if *name == "x-timeout" { TIMEOUT } else { text };
        refused = refused.header(
            canonical(name),
            HeaderBuilder::new()
                .schema(string())
                .description(Some(format!("`{described}`")))
                .build(),
        );
    }
    builder
        .response(status.to_string(), success)
        .response("4XX", refused)
        .response(
            "5XX",
            ResponseBuilder::new()
                .description("The cluster failed (as v2 answers it).")
                .content("application/json", json(schema_ref("V1ErrorBody"))),
        )
        .build()
}

fn method(name: &str) -> HttpMethod {
    match name {
        "get" => HttpMethod::Get,
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        _ => HttpMethod::Delete,
    }
}

/// A v1 `{"description", "output"}` answer; `output` depends on the operation.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct Output {
    description: String,
    #[schema(value_type = Object)]
    output: serde_json::Value,
}

/// `{"success": "…"}`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct Success {
    success: String,
}

/// `{"success": "…"}`, the answer of `xfer-external/invalidate`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct Invalidated {
    success: String,
}

/// `{"success": [reservation, …]}`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the wire format only.
pub struct ReservationsResponse {
    #[schema(value_type = Vec<Object>)]
    success: Vec<serde_json::Value>,
}

/// The v1 document: every operation of [`OPERATIONS`], served under `prefix`.
pub fn document(prefix: &str) -> OpenApi {
    let mut paths = PathsBuilder::new().build();
    for op in OPERATIONS {
        paths.add_path_operation(
            format!("{prefix}{}", op.path),
            vec![method(op.method)],
            operation(op),
        );
    }
    let statuses = STATUSES
        .iter()
        .map(|(code, text)| format!("`{code}` {text}"))
        .collect::<Vec<_>>()
        .join("; ");
    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .schema_from::<V1ErrorBody>()
        .schema_from::<Output>()
        .schema_from::<Success>()
        .schema_from::<Invalidated>()
        .schema_from::<ReservationsResponse>()
        .schema_from::<TaskCreated>()
        .schema_from::<TaskView>()
        .schema_from::<TaskResponse>()
        .schema_from::<TasksResponse>()
        .schema_from::<status::Service>()
        .schema_from::<status::ServicesResponse>()
        .schema_from::<status::System>()
        .schema_from::<status::SystemsResponse>()
        .schema_from::<status::SystemResponse>()
        .schema_from::<status::Filesystem>()
        .schema_from::<status::FilesystemsResponse>()
        .schema_from::<status::SystemFilesystemsResponse>()
        .schema_from::<status::Parameter>()
        .schema_from::<status::Parameters>()
        .schema_from::<status::ParametersResponse>()
        .build();
    let description = format!(
        "FirecREST v1 ({V1_VERSION}) served by Ironcrest beside v2, a façade over the same \
         services: the system is named by the `{MACHINE_HEADER}` header, bodies are forms, and \
         asynchronous operations answer with a task to read at `{prefix}/tasks/{{taskid}}`. \
         Task statuses: {statuses}. docs/v1.md says how this differs from FirecREST v1."
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Ironcrest: FirecREST v1")
                .version(V1_VERSION)
                .description(Some(description))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `<prefix>/openapi.json`, Swagger UI at `<prefix>/docs` and ReDoc at `<prefix>/redoc`
/// (the bundled ReDoc script is v2's `/redoc/redoc.standalone.js`).
pub fn router(prefix: &str) -> Router {
    let page = format!(
        r#"<!DOCTYPE html>
<html><head><title>Ironcrest: FirecREST v1</title><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="{prefix}/openapi.json"></redoc><script src="/redoc/redoc.standalone.js"></script></body></html>"#
    );
    Router::new()
        .merge(
            SwaggerUi::new(format!("{prefix}/docs"))
                .url(format!("{prefix}/openapi.json"), document(prefix)),
        )
        .route(
            &format!("{prefix}/redoc"),
            get(move || async move { Html(page) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_written_as_v1_documents_them() {
        assert_eq!(
            canonical("x-machine-does-not-exist"),
            "X-Machine-Does-Not-Exist"
        );
        assert_eq!(canonical("x-a-directory"), "X-A-Directory");
    }

    #[test]
    fn every_operation_is_in_the_document_once() {
        let json = serde_json::to_value(document("/v1")).unwrap();
        let mut count = 0;
        for op in OPERATIONS {
            let path = format!("/v1{}", op.path);
            assert!(
                json["paths"][&path][op.method].is_object(),
                "{} {path}",
                op.method
            );
            count += 1;
        }
        let documented: usize = json["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, count);
    }
}
