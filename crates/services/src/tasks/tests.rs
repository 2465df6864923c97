use ironcrest_remote::RequestIds;
use ironcrest_scheduler::{JobDescription, JobStatus, JobTime};

use super::state::{Observed, derive};
use super::*;

const NOW: i64 = 1_800_000_000;
const MIB: u64 = 1024 * 1024;

fn job(state: &str, exit_code: Option<i64>) -> Job {
    Job {
        job_id: "42".into(),
        status: JobStatus {
            state: state.into(),
            state_reason: None,
            exit_code,
            interrupt_signal: None,
        },
        time: JobTime {
            submit: Some(NOW - 100),
            start: Some(NOW - 90),
            end: (!["PENDING", "RUNNING"].contains(&state)).then_some(NOW - 70),
            ..JobTime::default()
        },
        user: Some("fireuser".into()),
        ..Job::default()
    }
}

fn upload(key: &str) -> UploadInProgress {
    UploadInProgress {
        key: key.into(),
        upload_id: "u".into(),
        initiated: Some(NOW - 100),
    }
}

fn object(key: &str, size: u64) -> StoredObject {
    StoredObject {
        key: key.into(),
        size,
        last_modified: Some(NOW - 20),
    }
}

fn part(number: u64, size: u64) -> UploadedPart {
    UploadedPart {
        number,
        size,
        last_modified: Some(NOW - 50 + number as i64),
    }
}

const UPLOAD: TaskKind = TaskKind::Transfer(TransferKind::Upload);
const DOWNLOAD: TaskKind = TaskKind::Transfer(TransferKind::Download);
const CP: TaskKind = TaskKind::Transfer(TransferKind::Cp);

fn observe(kind: TaskKind, job: &Job, staged: Option<&Staged>) -> state::Derived {
    derive(
        &Observed {
            kind,
            job,
            staged,
            file_size: kind.is_staged().then_some(12 * MIB),
            part_size: Some(5 * MIB),
        },
        NOW,
    )
}

fn in_progress(parts: Option<Vec<UploadedPart>>) -> Staged {
    Staged {
        upload: Some(upload("w/f")),
        object: None,
        parts,
    }
}

fn arrived() -> Staged {
    Staged {
        upload: None,
        object: Some(object("w/f", 12 * MIB)),
        parts: None,
    }
}

#[test]
fn jobs_and_transfer_jobs_follow_the_scheduler() {
    for (state, exit_code, expected) in [
        ("PENDING", None, TaskState::Pending),
        ("REQUEUE_HOLD", None, TaskState::Pending),
        ("RUNNING", None, TaskState::Running),
        ("COMPLETING", None, TaskState::Running),
        ("SUSPENDED", None, TaskState::Running),
        ("COMPLETED", Some(0), TaskState::Succeeded),
        ("CANCELLED", Some(0), TaskState::Cancelled),
        ("FAILED", Some(1), TaskState::Failed),
        ("TIMEOUT", Some(0), TaskState::Failed),
        ("NODE_FAIL", None, TaskState::Failed),
        // A transfer job's own "upload deadline" code means nothing for other kinds.
        ("FAILED", Some(4), TaskState::Failed),
    ] {
        for kind in [TaskKind::Job, CP] {
            let derived = observe(kind, &job(state, exit_code), None);
            assert_eq!(derived.state, expected, "{kind:?} {state}");
            assert_eq!(derived.progress.job_state, state);
            assert_eq!(derived.progress.parts, None);
        }
    }
    let failed = observe(CP, &job("FAILED", Some(1)), None);
    assert_eq!(
        failed.error.as_deref(),
        Some("The transfer job ended FAILED with exit code 1.")
    );
    let mut timed_out = job("TIMEOUT", Some(0));
    timed_out.status.state_reason = Some("TimeLimit".into());
    assert_eq!(
        observe(TaskKind::Job, &timed_out, None).error.as_deref(),
        Some("The job ended TIMEOUT with exit code 0 (TimeLimit).")
    );
    assert_eq!(observe(CP, &job("COMPLETED", Some(0)), None).error, None);
}

/// A failed job whose exit code has not arrived from the accounting database is still
/// finishing: an upload is not `failed` a moment before it is `expired`.
#[test]
fn a_failure_is_final_once_its_exit_code_is_known() {
    let mut lagging = job("FAILED", Some(0));
    lagging.time.end = Some(NOW - 5);
    assert_eq!(observe(UPLOAD, &lagging, None).state, TaskState::Running);
    assert_eq!(observe(CP, &lagging, None).state, TaskState::Running);
    lagging.status.exit_code = None;
    assert_eq!(
        observe(TaskKind::Job, &lagging, None).state,
        TaskState::Running
    );
    // Killed by a signal: known.
    lagging.status.interrupt_signal = Some(9);
    assert_eq!(observe(CP, &lagging, None).state, TaskState::Failed);
    lagging.status.interrupt_signal = None;
    lagging.status.exit_code = Some(4);
    assert_eq!(observe(UPLOAD, &lagging, None).state, TaskState::Expired);
    // A minute on, the record is what it is.
    lagging.status.exit_code = Some(0);
    lagging.time.end = Some(NOW - 60);
    assert_eq!(observe(CP, &lagging, None).state, TaskState::Failed);
    // Completed and cancelled jobs need no exit code.
    let mut completed = job("COMPLETED", None);
    completed.time.end = Some(NOW - 1);
    assert_eq!(observe(CP, &completed, None).state, TaskState::Succeeded);
}

#[test]
fn a_staged_upload_waits_for_its_data_then_runs() {
    let queued = observe(UPLOAD, &job("PENDING", None), Some(&in_progress(None)));
    assert_eq!(queued.state, TaskState::Pending);
    assert_eq!(
        (queued.progress.parts, queued.progress.bytes),
        (Some(3), Some(12 * MIB))
    );
    assert_eq!(
        queued.progress.parts_done, None,
        "parts unknown in a listing"
    );

    let sending = Staged {
        parts: Some(vec![part(1, 5 * MIB), part(3, 2 * MIB)]),
        ..in_progress(None)
    };
    let waiting = observe(UPLOAD, &job("RUNNING", None), Some(&sending));
    assert_eq!(waiting.state, TaskState::Pending);
    assert_eq!(
        (waiting.progress.parts_done, waiting.progress.bytes_done),
        (Some(2), Some(7 * MIB))
    );
    assert_eq!(waiting.updated, Some(NOW - 47), "the last part's time");

    let fetching = observe(UPLOAD, &job("RUNNING", None), Some(&arrived()));
    assert_eq!(fetching.state, TaskState::Running);
    assert_eq!(
        (fetching.progress.parts_done, fetching.progress.bytes_done),
        (Some(3), Some(12 * MIB))
    );
    // The job has fetched and removed the object, and is finishing.
    let finishing = observe(UPLOAD, &job("RUNNING", None), Some(&Staged::default()));
    assert_eq!(finishing.state, TaskState::Running);

    let done = observe(UPLOAD, &job("COMPLETED", Some(0)), Some(&Staged::default()));
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.progress.parts_done, Some(3));
    assert_eq!(done.error, None);
}

#[test]
fn a_staged_upload_never_completed_expires() {
    let expired = observe(UPLOAD, &job("FAILED", Some(4)), Some(&in_progress(None)));
    assert_eq!(expired.state, TaskState::Expired);
    assert!(expired.error.unwrap().contains("not completed in time"));
    assert_eq!(expired.progress.parts_done, None);
    // Other failures are failures, whatever S3 holds.
    let refused = observe(UPLOAD, &job("FAILED", Some(5)), Some(&arrived()));
    assert_eq!(refused.state, TaskState::Failed);
    let cancelled = observe(UPLOAD, &job("CANCELLED", None), Some(&in_progress(None)));
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert_eq!(cancelled.error, None);
}

#[test]
fn a_staged_download_succeeds_while_its_object_is_there() {
    let queued = observe(DOWNLOAD, &job("PENDING", None), Some(&in_progress(None)));
    assert_eq!(queued.state, TaskState::Pending);
    assert_eq!(
        (queued.progress.parts_done, queued.progress.bytes_done),
        (Some(0), Some(0))
    );
    let sending = Staged {
        parts: Some(vec![part(1, 5 * MIB)]),
        ..in_progress(None)
    };
    let running = observe(DOWNLOAD, &job("RUNNING", None), Some(&sending));
    assert_eq!(running.state, TaskState::Running);
    assert_eq!(running.progress.parts_done, Some(1));
    let done = observe(DOWNLOAD, &job("COMPLETED", Some(0)), Some(&arrived()));
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(
        (done.progress.parts_done, done.progress.bytes_done),
        (Some(3), Some(12 * MIB))
    );
    let gone = observe(
        DOWNLOAD,
        &job("COMPLETED", Some(0)),
        Some(&Staged::default()),
    );
    assert_eq!(gone.state, TaskState::Expired);
    assert!(gone.error.unwrap().contains("expired"));
    // Without a view of S3 (none configured), the job's word is all there is.
    let unknown = observe(DOWNLOAD, &job("COMPLETED", Some(0)), None);
    assert_eq!(unknown.state, TaskState::Succeeded);
}

#[test]
fn times_are_the_submission_and_the_last_thing_that_happened() {
    let running = observe(TaskKind::Job, &job("RUNNING", None), None);
    assert_eq!(running.created, Some(NOW - 100));
    assert_eq!(running.updated, Some(NOW - 90));
    // A pending job's start and end are expectations, not events.
    let mut pending = job("PENDING", None);
    pending.time.start = Some(NOW + 600);
    pending.time.end = Some(NOW + 1200);
    assert_eq!(observe(CP, &pending, None).updated, Some(NOW - 100));
    // The job ended (NOW - 70), then its object's upload was completed (NOW - 20).
    let ended = observe(DOWNLOAD, &job("COMPLETED", Some(0)), Some(&arrived()));
    assert_eq!(ended.updated, Some(NOW - 20));
    assert_eq!(
        observe(CP, &job("COMPLETED", Some(0)), None).updated,
        Some(NOW - 70)
    );
}

#[test]
fn task_ids_are_a_kind_and_a_job_id() {
    for kind in TaskKind::ALL {
        let text = format!("{}-1234", kind.as_str());
        let id = TaskId::parse(&text).unwrap();
        assert_eq!((id.kind, id.job_id.as_str()), (kind, "1234"));
        assert_eq!(id.to_string(), text);
    }
    for bad in [
        "",
        "upload",
        "upload-",
        "-1234",
        "upload-0",
        "upload-12a",
        "Upload-12",
        "move-12",
        "upload-1-2",
        "upload--12",
    ] {
        assert!(
            matches!(
                TaskId::parse(bad),
                Err(ServiceError::InvalidField {
                    field: "task_id",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        TaskId::parse("job-9999999999"),
        Err(ServiceError::TaskNotFound(_))
    ));
}

#[test]
fn arguments_travel_in_the_jobs_comment() {
    let arguments = TaskArguments {
        source_path: Some("/home/fireuser/it's a \"file\"\n$(x)".into()),
        target_path: Some("/home/fireuser/archive.tar.xz".into()),
        compression: Some(Compression::Xz),
        dereference: Some(true),
        match_pattern: Some(".*\\.txt".into()),
        account: Some("proj".into()),
        ..TaskArguments::default()
    };
    let work = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let note = arguments.note(TransferKind::Compress, work);
    assert_eq!(note.work_id, "0123456789abcdef0123456789abcdef");
    let caller = Caller::new("fireuser", "t").for_request(RequestIds {
        request_id: "r".into(),
        correlation_id: None,
    });
    let job = JobDescription {
        task: Some(note),
        ..JobDescription::default()
    };
    let written = JobComment::of(&caller, &job).unwrap().to_string();
    let read = JobComment::parse(&written).unwrap().task.unwrap();
    assert_eq!(TaskArguments::read(&read), Some(arguments));
    assert_eq!(
        TaskKind::of(Some(&read)),
        Some(TaskKind::Transfer(TransferKind::Compress))
    );
    assert_eq!(TaskKind::of(None), Some(TaskKind::Job));
    let unknown = TaskNote {
        kind: "teleport".into(),
        ..read
    };
    assert_eq!(TaskKind::of(Some(&unknown)), None);
    assert_eq!(
        serde_json::to_value(TaskArguments {
            path: Some("/a".into()),
            file_size: Some(3),
            ..TaskArguments::default()
        })
        .unwrap(),
        serde_json::json!({"path": "/a", "fileSize": 3})
    );
}

#[test]
fn a_job_is_looked_for_in_the_shortest_window_that_reaches_it() {
    assert_eq!(window_since(Some(NOW - 10), NOW), TimeWindow::OneHour);
    assert_eq!(window_since(Some(NOW - 3600), NOW), TimeWindow::EightHours);
    assert_eq!(window_since(Some(NOW - 86_000), NOW), TimeWindow::OneDay);
    assert_eq!(window_since(Some(NOW - 86_400), NOW), TimeWindow::ThreeDays);
    assert_eq!(
        window_since(Some(NOW - 30 * 86_400), NOW),
        TimeWindow::SevenDays
    );
    assert_eq!(window_since(None, NOW), TimeWindow::SevenDays);
}

#[test]
fn a_snapshot_is_split_by_work_id() {
    let first = uuid::Uuid::from_u128(1);
    let second = uuid::Uuid::from_u128(2);
    let snapshot = Snapshot {
        uploads: vec![upload(&format!("{first}/a.bin"))],
        objects: vec![object(&format!("{second}/b.bin"), 7)],
    };
    let of_first = snapshot.of(first);
    assert!(of_first.upload.is_some() && of_first.object.is_none());
    let of_second = snapshot.of(second);
    assert!(of_second.upload.is_none());
    assert_eq!(of_second.object.unwrap().size, 7);
    assert_eq!(snapshot.of(uuid::Uuid::from_u128(3)), Staged::default());
}

fn commented(job_id: &str, kind: Option<&str>) -> CommentedJob {
    CommentedJob {
        job_id: job_id.into(),
        comment: JobComment {
            ids: RequestIds {
                request_id: "r".into(),
                correlation_id: None,
            },
            idempotency: None,
            task: kind.map(|kind| TaskNote {
                kind: kind.into(),
                work_id: "0123456789abcdef0123456789abcdef".into(),
                arguments: None,
            }),
        },
    }
}

fn numbered(job_id: &str) -> Job {
    Job {
        job_id: job_id.into(),
        ..job("COMPLETED", Some(0))
    }
}

fn ids(sources: &[Source]) -> Vec<String> {
    sources.iter().map(|source| source.id.to_string()).collect()
}

#[test]
fn a_listing_keeps_ironcrests_jobs_newest_first() {
    // Job 8 was submitted elsewhere (no comment of Ironcrest's); job 11's kind is unknown.
    let jobs = ["9", "100", "8", "10", "11"].map(numbered).to_vec();
    let comments = [
        commented("9", Some("mv")),
        commented("100", None),
        commented("10", Some("upload")),
        commented("11", Some("teleport")),
        commented("12", Some("cp")),
    ];
    let all = sources(jobs.clone(), &comments, &TaskFilter::default());
    assert_eq!(ids(&all), ["job-100", "upload-10", "mv-9"]);

    let uploads_and_moves = TaskFilter {
        kinds: vec![UPLOAD, TaskKind::Transfer(TransferKind::Mv)],
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&sources(jobs.clone(), &comments, &uploads_and_moves)),
        ["upload-10", "mv-9"]
    );
    let older = TaskFilter {
        after: Some(TaskId::parse("job-100").unwrap()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&sources(jobs, &comments, &older)),
        ["upload-10", "mv-9"]
    );
}

#[test]
fn a_page_holds_the_states_asked_for_and_says_whether_more_follow() {
    let task = |job_id: &str, state: TaskState| Task {
        id: TaskId::parse(&format!("cp-{job_id}")).unwrap(),
        state,
        created: None,
        updated: None,
        arguments: None,
        progress: TaskProgress::default(),
        error: None,
        logs: None,
        work: None,
    };
    let tasks = || {
        [
            task("5", TaskState::Running),
            task("4", TaskState::Failed),
            task("3", TaskState::Running),
            task("2", TaskState::Succeeded),
        ]
        .into_iter()
    };
    let ids = |page: &TaskPage| {
        page.tasks
            .iter()
            .map(|task| task.job_id().to_string())
            .collect::<Vec<_>>()
    };
    let two = TaskFilter {
        limit: 2,
        ..TaskFilter::default()
    };
    let first = page(tasks(), &two);
    assert_eq!(
        (ids(&first), first.more),
        (vec!["5".into(), "4".into()], true)
    );
    let running = TaskFilter {
        states: vec![TaskState::Running],
        ..two
    };
    let only = page(tasks(), &running);
    assert_eq!(
        (ids(&only), only.more),
        (vec!["5".into(), "3".into()], false)
    );
    let everything = page(tasks(), &TaskFilter::default());
    assert_eq!((everything.tasks.len(), everything.more), (4, false));
}
