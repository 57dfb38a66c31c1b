"""Every statement the store runs, named, with named parameters, written once for both backends.

A statement's parameters are written `{name}`; each backend renders the text once into its own driver's
style (SQLite's `:name`, psycopg's placeholders) and passes the values by name, so no statement is ever
edited per backend or per call. Optional filters are parameters that may be NULL
(`CAST({run_id} AS TEXT) IS NULL OR run_id = {run_id}`), and lists travel as one JSON array, so a
statement's text never depends on its arguments. Where the backends need different SQL (claims that
skip rows another worker holds, JSON arrays, column types, PostgreSQL's locks and notifications) both
texts stand side by side under one name. Job states are written as the literals the schema's CHECK
allows.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Query:
    """One named statement: its SQLite text and its PostgreSQL text (None: not run on SQLite)."""

    sqlite: str | None
    postgres: str

    @classmethod
    def both(cls, text: str) -> Query:
        return cls(text, text)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The parameters the statement takes, each once, in order of first use."""
        found: dict[str, None] = {}
        for text in (self.sqlite or "", self.postgres):
            for _, name, _, _ in string.Formatter().parse(text):
                if name:
                    found[name] = None
        return tuple(found)


# ---- migrations ---------------------------------------------------------------------------------------

CREATE_MIGRATIONS_TABLE = Query(
    sqlite="CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)",
    postgres="""
    CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)
    """,
)
APPLIED_MIGRATIONS = Query.both("SELECT name FROM schema_migrations")
RECORD_MIGRATION = Query.both(
    "INSERT INTO schema_migrations (name, applied_at) VALUES ({name}, {applied_at})"
)

# ---- PostgreSQL's own: locks held to the end of the transaction, and the wake-up of idle workers ------

ADVISORY_LOCK = Query(sqlite=None, postgres="SELECT pg_advisory_xact_lock({lock_id})")
NOTIFY_WORKERS = Query(sqlite=None, postgres="SELECT pg_notify('whisperbatch_jobs', '')")
LISTEN_WORKERS = Query(sqlite=None, postgres="LISTEN whisperbatch_jobs")

# ---- the ledger ---------------------------------------------------------------------------------------

INSERT_COST = Query.both(
    """
    INSERT INTO ledger (
        run_id, recorded_at, state, job_key, file, audio_s, billed_min, engine, model, usd_per_min, usd,
        api_equivalent_usd, task, transcribe_usd, transcribe_tokens, translate_model, translate_to,
        translate_input_tokens, translate_output_tokens, translate_usd, same_as
    ) VALUES (
        {run_id}, {recorded_at}, {state}, {job_key}, {file}, {audio_s}, {billed_min}, {engine}, {model},
        {usd_per_min}, {usd}, {api_equivalent_usd}, {task}, {transcribe_usd}, {transcribe_tokens},
        {translate_model}, {translate_to}, {translate_input_tokens}, {translate_output_tokens},
        {translate_usd}, {same_as}
    ) RETURNING id
    """
)
UPDATE_COST = Query.both(
    """
    UPDATE ledger SET recorded_at = {recorded_at}, state = {state}, file = {file}, audio_s = {audio_s},
        billed_min = {billed_min}, engine = {engine}, model = {model}, usd_per_min = {usd_per_min},
        usd = {usd}, api_equivalent_usd = {api_equivalent_usd}, task = {task},
        transcribe_usd = {transcribe_usd}, transcribe_tokens = {transcribe_tokens},
        translate_model = {translate_model}, translate_to = {translate_to},
        translate_input_tokens = {translate_input_tokens},
        translate_output_tokens = {translate_output_tokens},
        translate_usd = {translate_usd}, same_as = {same_as}
    WHERE id = {id}
    """
)
LEDGER = Query.both("SELECT * FROM ledger ORDER BY id")

# ---- the budget ---------------------------------------------------------------------------------------

# Spent: the ledger's rows (one run's, when {run_id} is given), less those of files in progress under a
# reservation (the reservation stands for them); of a row whose sum is unknown, the part that is known.
SPENT_USD = Query.both(
    """
    SELECT COALESCE(SUM(COALESCE(l.usd, COALESCE(l.transcribe_usd, 0) + COALESCE(l.translate_usd, 0))), 0)
        AS usd
    FROM ledger l
    WHERE NOT (l.state = 'running' AND EXISTS (
            SELECT 1 FROM jobs j
            WHERE j.key = l.job_key AND j.reserved_by = l.run_id AND j.reserved_usd IS NOT NULL))
        AND (CAST({run_id} AS TEXT) IS NULL OR l.run_id = {run_id})
    """
)
# Committed: what the other running jobs hold (one run's, when {run_id} is given).
COMMITTED_USD = Query.both(
    """
    SELECT COALESCE(SUM(reserved_usd), 0) AS usd FROM jobs
    WHERE reserved_usd IS NOT NULL AND key <> {key}
        AND (CAST({run_id} AS TEXT) IS NULL OR reserved_by = {run_id})
    """
)
RESERVE_BUDGET = Query.both("UPDATE jobs SET reserved_usd = {usd}, reserved_by = {run_id} WHERE key = {key}")
RELEASE_BUDGET = Query.both("UPDATE jobs SET reserved_usd = NULL, reserved_by = NULL WHERE key = {key}")

# ---- jobs ---------------------------------------------------------------------------------------------

SEEN_SHA256 = Query.both(
    """
    SELECT j.content_sha256 FROM seen_files s JOIN jobs j ON j.key = s.job_key
    WHERE s.path = {path} AND s.size_bytes = {size_bytes} AND s.mtime_ns = {mtime_ns}
    """
)
INSERT_JOB = Query.both(
    """
    INSERT INTO jobs (key, content_sha256, task, path, state, options, run_id, created_at, updated_at)
    VALUES ({key}, {sha256}, {task}, {path}, 'queued', {options}, {run_id}, {now}, {now})
    ON CONFLICT (key) DO NOTHING
    """
)
# A job not done becomes the latest asker's: its options, its outputs are the ones awaited.
ASK_FOR_JOB = Query.both(
    """
    UPDATE jobs SET run_id = {run_id}, options = COALESCE({options}, options)
    WHERE key = {key} AND state <> 'done'
    """
)
SEE_FILE = Query.both(
    """
    INSERT INTO seen_files (path, size_bytes, mtime_ns, job_key)
    VALUES ({path}, {size_bytes}, {mtime_ns}, {key})
    ON CONFLICT (path) DO UPDATE SET size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns,
        job_key = excluded.job_key
    """
)
JOB = Query.both("SELECT * FROM jobs WHERE key = {key}")
JOB_BY_ID = Query.both("SELECT * FROM jobs WHERE id = {id}")
COUNT_JOBS = Query.both("SELECT COUNT(*) AS n FROM jobs WHERE state = {state}")
JOB_SPEND = Query.both("SELECT COALESCE(SUM(usd), 0) AS usd FROM ledger WHERE job_key = {key}")
JOBS = Query.both(
    """
    SELECT * FROM jobs
    WHERE (CAST({state} AS TEXT) IS NULL OR state = {state})
        AND (CAST({run_id} AS TEXT) IS NULL OR run_id = {run_id})
    ORDER BY id
    """
)
# A job's columns but its transcript, read as NULL: what a list shows, without each job's whole text.
_JOB_BRIEF = """
    id, key, content_sha256, task, path, state, attempts, not_before, lease_owner, lease_expires, error,
    NULL AS transcript, usd, created_at, updated_at, run_id, options, reserved_usd, reserved_by,
    chunks_done, chunks_total, audio_s, audio_done_s, started_at, cancel_requested
"""
# The newest jobs first, at most {limit} of them (one state's, when {state} is given): a page of a list.
LATEST_JOBS = Query.both(
    f"SELECT {_JOB_BRIEF} FROM jobs WHERE (CAST({{state}} AS TEXT) IS NULL OR state = {{state}})"
    " ORDER BY id DESC LIMIT {limit}"
)

# A claim's scope: every job, or those of run {run_id} and those of recordings under {folder} (a path
# ending in the separator, {folder_len} characters long).
_CLAIM_SCOPE = """
    AND ((CAST({folder} AS TEXT) IS NULL AND CAST({run_id} AS TEXT) IS NULL)
        OR substr(path, 1, {folder_len}) = {folder} OR run_id = {run_id})
"""
# Running jobs leased by other workers of this host ({this_host} is "HOST:%"), to find dead ones.
_CLAIM_ORPHANS = """
    SELECT * FROM jobs WHERE state = 'running' AND lease_owner LIKE {this_host} AND lease_owner <> {owner}
"""
CLAIM_ORPHANS = Query(
    sqlite=_CLAIM_ORPHANS + _CLAIM_SCOPE + "ORDER BY id",
    postgres=_CLAIM_ORPHANS + _CLAIM_SCOPE + "ORDER BY id FOR UPDATE SKIP LOCKED",
)
# The oldest job queued and due, or running under a lease that expired.
_CLAIM_NEXT = """
    SELECT * FROM jobs
    WHERE ((state = 'queued' AND not_before <= {now})
        OR (state = 'running' AND (lease_expires IS NULL OR lease_expires < {now})))
"""
CLAIM_NEXT = Query(
    sqlite=_CLAIM_NEXT + _CLAIM_SCOPE + "ORDER BY id LIMIT 1",
    postgres=_CLAIM_NEXT + _CLAIM_SCOPE + "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
)
TAKE_JOB = Query.both(
    """
    UPDATE jobs SET state = 'running', lease_owner = {owner}, lease_expires = {lease_expires},
        attempts = attempts + 1, reserved_usd = NULL, reserved_by = NULL, updated_at = {now},
        chunks_done = 0, chunks_total = NULL, audio_done_s = 0, started_at = NULL
    WHERE id = {id}
    """
)
RENEW_LEASES = Query.both(
    "UPDATE jobs SET lease_expires = {lease_expires} WHERE state = 'running' AND lease_owner = {owner}"
)
FINISH_JOB = Query.both(
    """
    UPDATE jobs SET state = 'done', error = NULL, transcript = {transcript}, usd = COALESCE({usd}, usd),
        lease_owner = NULL, lease_expires = NULL, reserved_usd = NULL, reserved_by = NULL,
        cancel_requested = 0, updated_at = {now}
    WHERE key = {key}
    """
)
FAIL_JOB = Query.both(
    """
    UPDATE jobs SET state = 'failed', error = {error}, lease_owner = NULL, lease_expires = NULL,
        reserved_usd = NULL, reserved_by = NULL, updated_at = {now}
    WHERE key = {key}
    """
)
REQUEUE_JOB = Query.both(
    """
    UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL, not_before = {not_before},
        reserved_usd = NULL, reserved_by = NULL, error = {error}, attempts = attempts - {refunded},
        updated_at = {now}
    WHERE key = {key}
    """
)
REDO_JOB = Query.both(
    """
    UPDATE jobs SET state = 'queued', path = {path}, options = {options}, run_id = COALESCE({run_id}, run_id),
        attempts = 0, error = NULL, transcript = NULL, not_before = 0, lease_owner = NULL,
        lease_expires = NULL, cancel_requested = 0, updated_at = {now}
    WHERE key = {key}
    """
)
REOPEN_JOB = Query.both(
    """
    UPDATE jobs SET state = 'queued', path = {path}, options = {options}, run_id = COALESCE({run_id}, run_id),
        attempts = 0, error = NULL, not_before = 0, cancel_requested = 0, updated_at = {now}
    WHERE key = {key} AND state IN ('done', 'failed')
    """
)
# Failed jobs back to the queue: all of them, or those whose keys the JSON array {keys} lists.
RETRY_FAILED = Query(
    sqlite="""
    UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, not_before = 0, cancel_requested = 0,
        updated_at = {now}
    WHERE state = 'failed'
        AND (CAST({keys} AS TEXT) IS NULL OR key IN (SELECT value FROM json_each({keys})))
    """,
    postgres="""
    UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, not_before = 0, cancel_requested = 0,
        updated_at = {now}
    WHERE state = 'failed'
        AND (CAST({keys} AS TEXT) IS NULL OR key IN (SELECT jsonb_array_elements_text(CAST({keys} AS jsonb))))
    """,
)

# ---- how far a running job is, and its cancel ---------------------------------------------------------

JOB_STARTED = Query.both("UPDATE jobs SET audio_s = {audio_s}, started_at = {now} WHERE key = {key}")
# One more chunk answered, accounting for {covered_s} of the recording; says whether a cancel was asked.
CHUNK_DONE = Query.both(
    """
    UPDATE jobs SET chunks_done = chunks_done + 1, audio_done_s = audio_done_s + {covered_s}
    WHERE key = {key} AND state = 'running'
    RETURNING cancel_requested
    """
)
CHUNKS_COUNTED = Query.both("UPDATE jobs SET chunks_total = {total} WHERE key = {key}")
CANCEL_QUEUED = Query.both(
    """
    UPDATE jobs SET state = 'failed', error = {error}, updated_at = {now}
    WHERE key = {key} AND state = 'queued'
    """
)
REQUEST_CANCEL = Query.both(
    "UPDATE jobs SET cancel_requested = 1, updated_at = {now} WHERE key = {key} AND state = 'running'"
)
CANCELS = Query.both(
    """
    SELECT key FROM jobs WHERE state = 'running' AND lease_owner = {owner} AND cancel_requested <> 0
    ORDER BY id
    """
)

# What a job made, dropped when it is redone (not its ledger rows: they were paid).
FORGET_CHUNK_RESULTS = Query.both("DELETE FROM chunk_results WHERE job_key = {key}")
FORGET_ANSWERS = Query.both("DELETE FROM answers WHERE job_key = {key}")
FORGET_TRANSLATIONS = Query.both("DELETE FROM translations WHERE job_key = {key}")
FORGET_SPEAKER_LABELS = Query.both("DELETE FROM speaker_labels WHERE job_key = {key}")

# ---- what jobs made: chunk results, answers, translations ----------------------------------------------

CHUNK_RESULT = Query.both(
    """
    SELECT result FROM chunk_results
    WHERE job_key = {key} AND idx = {idx}
        AND abs(offset_s - {offset_s}) < 0.001 AND abs(duration_s - {duration_s}) < 0.001
    """
)
SAVE_CHUNK_RESULT = Query.both(
    """
    INSERT INTO chunk_results (job_key, idx, offset_s, duration_s, result)
    VALUES ({key}, {idx}, {offset_s}, {duration_s}, {result})
    ON CONFLICT (job_key, idx) DO UPDATE SET offset_s = excluded.offset_s, duration_s = excluded.duration_s,
        result = excluded.result
    """
)
ANSWER = Query.both("SELECT result FROM answers WHERE job_key = {key} AND request = {request}")
SAVE_ANSWER = Query.both(
    """
    INSERT INTO answers (job_key, request, result) VALUES ({key}, {request}, {result})
    ON CONFLICT (job_key, request) DO UPDATE SET result = excluded.result
    """
)
TRANSLATION = Query.both("SELECT texts FROM translations WHERE key = {key}")
SAVE_TRANSLATION = Query.both(
    """
    INSERT INTO translations (key, job_key, target, model, texts, created_at)
    VALUES ({key}, {job_key}, {target}, {model}, {texts}, {now})
    ON CONFLICT (key) DO UPDATE SET texts = excluded.texts
    """
)

# ---- which recording each output was written from -------------------------------------------------------

RECORD_OUTPUT = Query.both(
    """
    INSERT INTO outputs (path, source, job_key, job, written_at)
    VALUES ({path}, {source}, {job_key}, {job}, {now})
    ON CONFLICT (path) DO UPDATE SET source = excluded.source, job_key = excluded.job_key,
        job = excluded.job, written_at = excluded.written_at
    """
)
# The records of the paths the JSON array {paths} lists.
OUTPUTS = Query(
    sqlite="SELECT path, source, job_key FROM outputs WHERE path IN (SELECT value FROM json_each({paths}))",
    postgres="""
    SELECT path, source, job_key FROM outputs
    WHERE path IN (SELECT jsonb_array_elements_text(CAST({paths} AS jsonb)))
    """,
)

# ---- who speaks: registered voices, and each recording's diarization ------------------------------------

VOICES = Query.both("SELECT name, embedding, source, created_at FROM voices ORDER BY name")
# A new name only: a name already registered is left as it is (no row changed).
ADD_VOICE = Query.both(
    """
    INSERT INTO voices (name, embedding, source, created_at) VALUES ({name}, {embedding}, {source}, {now})
    ON CONFLICT (name) DO NOTHING
    """
)
PUT_VOICE = Query.both(
    """
    INSERT INTO voices (name, embedding, source, created_at) VALUES ({name}, {embedding}, {source}, {now})
    ON CONFLICT (name) DO UPDATE SET embedding = excluded.embedding, source = excluded.source,
        created_at = excluded.created_at
    """
)
REMOVE_VOICE = Query.both("DELETE FROM voices WHERE name = {name}")
SPEAKER_LABELS = Query.both("SELECT diarization FROM speaker_labels WHERE key = {key}")
SAVE_SPEAKER_LABELS = Query.both(
    """
    INSERT INTO speaker_labels (key, job_key, diarization, created_at)
    VALUES ({key}, {job_key}, {data}, {now})
    ON CONFLICT (key) DO UPDATE SET job_key = excluded.job_key, diarization = excluded.diarization,
        created_at = excluded.created_at
    """
)

# ---- outputs by job, server keys -----------------------------------------------------------------------

# A job's outputs: written from the job, or from it with speaker options (`OutputOptions.written_from`).
JOB_OUTPUTS = Query.both("SELECT path, source, job_key FROM outputs WHERE job = {key} ORDER BY path")
ADD_KEY = Query.both(
    """
    INSERT INTO api_keys (name, prefix, sha256, created_at) VALUES ({name}, {prefix}, {sha256}, {now})
    ON CONFLICT (name) DO NOTHING
    """
)
API_KEYS = Query.both("SELECT * FROM api_keys ORDER BY id")
REVOKE_KEY = Query.both("UPDATE api_keys SET revoked_at = {now} WHERE name = {name} AND revoked_at IS NULL")
# ---- webhooks: job ends found by the store, and one delivery per job end and receiver ----------------

# How far job ends have been looked for: set once, by the first sender on the store, then only forward.
START_WEBHOOK_WATERMARK = Query.both(
    """
    INSERT INTO webhook_watermark (id, ended_at) VALUES (1, {ended_at})
    ON CONFLICT (id) DO NOTHING
    """
)
WEBHOOK_WATERMARK = Query.both("SELECT ended_at FROM webhook_watermark WHERE id = 1")
ADVANCE_WEBHOOK_WATERMARK = Query.both(
    "UPDATE webhook_watermark SET ended_at = {ended_at} WHERE id = 1 AND ended_at < {ended_at}"
)
# Jobs that ended (done or failed) after {since} and have no delivery to {url} for that end yet.
JOB_ENDS = Query.both(
    """
    SELECT j.id, j.key, j.task, j.path, j.state, j.error, j.usd, j.updated_at FROM jobs j
    WHERE j.state IN ('done', 'failed') AND j.updated_at > {since}
        AND NOT EXISTS (
            SELECT 1 FROM webhook_deliveries d
            WHERE d.job_key = j.key AND d.job_ended_at = j.updated_at AND d.url = {url})
    ORDER BY j.updated_at, j.id LIMIT {limit}
    """
)
# The outputs written from job {job_key}, with speaker labels or without ({labelled}: "KEY:speakers:").
RECORD_DELIVERY = Query.both(
    """
    INSERT INTO webhook_deliveries (
        event_id, url, event_type, job_key, job_ended_at, body, state, attempts, next_at, created_at
    ) VALUES (
        {event_id}, {url}, {event_type}, {job_key}, {job_ended_at}, {body}, 'pending', 0, {now}, {now}
    )
    ON CONFLICT (event_id, url) DO NOTHING
    """
)
# The delivery due first; PostgreSQL skips one another sender is taking.
_DUE_DELIVERY = """
    SELECT * FROM webhook_deliveries WHERE state = 'pending' AND next_at <= {now} ORDER BY next_at, id LIMIT 1
"""
DUE_DELIVERY = Query(sqlite=_DUE_DELIVERY, postgres=_DUE_DELIVERY + " FOR UPDATE SKIP LOCKED")
# Taken for one attempt: due again at {lease_until} unless the attempt's outcome is written first.
TAKE_DELIVERY = Query.both(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = {lease_until} WHERE id = {id}"
)
DELIVERED = Query.both(
    """
    UPDATE webhook_deliveries SET state = 'delivered', delivered_at = {now}, last_error = NULL
    WHERE id = {id}
    """
)
# An attempt that failed: {state} 'pending' to try again at {next_at}, or 'failed' when given up on.
DELIVERY_FAILED = Query.both(
    "UPDATE webhook_deliveries SET state = {state}, next_at = {next_at}, last_error = {error} WHERE id = {id}"
)
DELIVERIES = Query.both(
    """
    SELECT * FROM webhook_deliveries WHERE (CAST({job_key} AS TEXT) IS NULL OR job_key = {job_key})
    ORDER BY id
    """
)
