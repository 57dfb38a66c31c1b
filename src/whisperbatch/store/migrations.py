"""The schema, as named migrations appended in order and never edited once released.

Each is applied once and recorded in `schema_migrations`, so any older database upgrades in place. One
list serves both backends: `{pk}` and `{real}` stand for each one's id and float column types
(`SQLITE_TYPES`, `POSTGRES_TYPES`), the only places their DDL differs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnTypes:
    pk: str
    real: str


SQLITE_TYPES = ColumnTypes(pk="INTEGER PRIMARY KEY", real="REAL")
POSTGRES_TYPES = ColumnTypes(pk="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION")


def migration_sql(sql: str, *, pk: str, real: str) -> list[str]:
    """A migration's statements, with the backend's column types in place of `{pk}` and `{real}`."""
    return [s for s in sql.replace("{pk}", pk).replace("{real}", real).split(";") if s.strip()]


MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_ledger",
        """
        CREATE TABLE ledger (
            id {pk},
            run_id TEXT NOT NULL,
            recorded_at {real} NOT NULL,
            file TEXT NOT NULL,
            task TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_s {real} NOT NULL,
            billed_min {real} NOT NULL,
            usd_per_min {real} NOT NULL,
            usd {real} NOT NULL,
            api_equivalent_usd {real} NOT NULL
        );
        CREATE INDEX ledger_run ON ledger(run_id);
        """,
    ),
    (
        "002_jobs",
        """
        CREATE TABLE jobs (
            id {pk},
            key TEXT NOT NULL UNIQUE,
            content_sha256 TEXT NOT NULL,
            task TEXT NOT NULL,
            path TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before {real} NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires {real},
            error TEXT,
            transcript TEXT,
            usd {real},
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        );
        CREATE INDEX jobs_state ON jobs(state, not_before);
        CREATE TABLE chunk_results (
            job_key TEXT NOT NULL,
            idx INTEGER NOT NULL,
            offset_s {real} NOT NULL,
            duration_s {real} NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (job_key, idx)
        );
        CREATE TABLE seen_files (
            path TEXT PRIMARY KEY,
            size_bytes BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            job_key TEXT NOT NULL
        );
        """,
    ),
    (
        "003_ledger_state",
        """
        ALTER TABLE ledger ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
        """,
    ),
    (
        # Every run is jobs: the run that last asked for a job, the options a worker runs it with, the
        # budget a running job holds, and which job each ledger row paid for.
        "004_runs_are_jobs",
        """
        ALTER TABLE jobs ADD COLUMN run_id TEXT;
        ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE jobs ADD COLUMN reserved_usd {real};
        ALTER TABLE jobs ADD COLUMN reserved_by TEXT;
        ALTER TABLE ledger ADD COLUMN job_key TEXT;
        CREATE INDEX jobs_run ON jobs(run_id);
        CREATE INDEX ledger_job ON ledger(job_key);
        """,
    ),
    (
        # The API line-up of 2027: costs from reported usage, transcription and translation apart (an
        # older row's `usd` was all transcription), and translations kept, so translating a recording
        # into three languages transcribes it once and no translation is paid for twice.
        "005_translation",
        """
        ALTER TABLE ledger ADD COLUMN transcribe_usd {real} NOT NULL DEFAULT 0;
        UPDATE ledger SET transcribe_usd = usd;
        ALTER TABLE ledger ADD COLUMN transcribe_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_model TEXT NOT NULL DEFAULT '';
        ALTER TABLE ledger ADD COLUMN translate_to TEXT NOT NULL DEFAULT '';
        ALTER TABLE ledger ADD COLUMN translate_input_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_output_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_usd {real} DEFAULT 0;
        CREATE TABLE translations (
            key TEXT PRIMARY KEY,
            job_key TEXT NOT NULL,
            target TEXT NOT NULL,
            model TEXT NOT NULL,
            texts TEXT NOT NULL,
            created_at {real} NOT NULL
        );
        CREATE INDEX translations_job ON translations(job_key);
        """,
    ),
    (
        # Every answer the engine gave, stored the moment it arrives (a chunk's first answer, and each
        # answer to asking again), so a run stopped while a chunk is still being checked pays for none
        # of them twice.
        "006_answers",
        """
        CREATE TABLE answers (
            job_key TEXT NOT NULL,
            request TEXT NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (job_key, request)
        );
        """,
    ),
    (
        # A price that is not known (a compatible server's own model) is NULL, never 0. SQLite cannot
        # drop a NOT NULL, so the ledger is rebuilt with nullable money columns; its rows keep their
        # order (ids are given afresh, so PostgreSQL's sequence stays in step).
        "007_unknown_prices",
        """
        CREATE TABLE ledger_007 (
            id {pk},
            run_id TEXT NOT NULL,
            recorded_at {real} NOT NULL,
            file TEXT NOT NULL,
            task TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_s {real} NOT NULL,
            billed_min {real} NOT NULL,
            usd_per_min {real},
            usd {real},
            api_equivalent_usd {real},
            state TEXT NOT NULL DEFAULT 'done',
            job_key TEXT,
            transcribe_usd {real} DEFAULT 0,
            transcribe_tokens INTEGER NOT NULL DEFAULT 0,
            translate_model TEXT NOT NULL DEFAULT '',
            translate_to TEXT NOT NULL DEFAULT '',
            translate_input_tokens INTEGER NOT NULL DEFAULT 0,
            translate_output_tokens INTEGER NOT NULL DEFAULT 0,
            translate_usd {real} DEFAULT 0
        );
        INSERT INTO ledger_007 (
            run_id, recorded_at, file, task, engine, model, audio_s, billed_min, usd_per_min, usd,
            api_equivalent_usd, state, job_key, transcribe_usd, transcribe_tokens, translate_model,
            translate_to, translate_input_tokens, translate_output_tokens, translate_usd
        ) SELECT
            run_id, recorded_at, file, task, engine, model, audio_s, billed_min, usd_per_min, usd,
            api_equivalent_usd, state, job_key, transcribe_usd, transcribe_tokens, translate_model,
            translate_to, translate_input_tokens, translate_output_tokens, translate_usd
        FROM ledger ORDER BY id;
        DROP TABLE ledger;
        ALTER TABLE ledger_007 RENAME TO ledger;
        CREATE INDEX ledger_run ON ledger(run_id);
        CREATE INDEX ledger_job ON ledger(job_key);
        """,
    ),
    (
        # A file written from the stored transcript of another name (the same content) has a row of its
        # own, at $0, saying which recording it matched.
        "008_ledger_same_as",
        """
        ALTER TABLE ledger ADD COLUMN same_as TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        # Which recording each output file was written from: "up to date" is judged by the job (its
        # content and options) that wrote an output, not by modification times, and another
        # recording's outputs are never taken for a recording's own.
        "009_outputs",
        """
        CREATE TABLE outputs (
            path TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            job_key TEXT NOT NULL,
            written_at {real} NOT NULL
        );
        """,
    ),
    (
        # Speaker labels: registered voices (a name and the voiceprint of a clip of that person, kept
        # in the store so every host of a shared store labels them by name), and each recording's
        # diarization under its own key (job, speaker options), so labels added to a recording already
        # transcribed are worked out once.
        "010_speakers",
        """
        CREATE TABLE voices (
            name TEXT PRIMARY KEY,
            embedding TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at {real} NOT NULL
        );
        CREATE TABLE speaker_labels (
            key TEXT PRIMARY KEY,
            job_key TEXT NOT NULL,
            diarization TEXT NOT NULL,
            created_at {real} NOT NULL
        );
        CREATE INDEX speaker_labels_job ON speaker_labels(job_key);
        """,
    ),
    (
        # Webhooks: one delivery per job end and receiver, with the exact body that is signed and sent
        # (a retry sends the same bytes), kept until it is delivered or given up on, so a restart drops
        # none; and how far job ends have been looked for (`webhook_watermark`, one row), so job ends
        # made while no sender ran (by workers on other hosts too) are found by the store.
        "011_webhooks",
        """
        CREATE TABLE webhook_deliveries (
            id {pk},
            event_id TEXT NOT NULL,
            url TEXT NOT NULL,
            event_type TEXT NOT NULL,
            job_key TEXT NOT NULL,
            job_ended_at {real} NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at {real} NOT NULL,
            last_error TEXT,
            created_at {real} NOT NULL,
            delivered_at {real},
            UNIQUE (event_id, url)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
        CREATE INDEX webhook_deliveries_job ON webhook_deliveries(job_key, job_ended_at);
        CREATE TABLE webhook_watermark (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            ended_at {real} NOT NULL
        );
        CREATE INDEX jobs_updated ON jobs(updated_at);
        """,
    ),
    (
        # How far a running job is, kept where every host reads it (a server shows the progress of
        # jobs its workers elsewhere run), counted afresh by each run; and a cancel asked of a
        # running job, which the worker that holds it sees and stops it for.
        "012_progress",
        """
        ALTER TABLE jobs ADD COLUMN chunks_done INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN chunks_total INTEGER;
        ALTER TABLE jobs ADD COLUMN audio_s {real};
        ALTER TABLE jobs ADD COLUMN audio_done_s {real} NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN started_at {real};
        ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        # Keys for `serve`: a client's bearer key is kept only as its SHA-256 (a key is random and long, so
        # a slow password hash adds nothing), with its first characters to tell keys apart in a list.
        "013_keys",
        """
        CREATE TABLE api_keys (
            id {pk},
            name TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            created_at {real} NOT NULL,
            revoked_at {real}
        );
        """,
    ),
    (
        # A job's outputs found by an index (a server lists outputs with every job it shows): the job's
        # own key beside the key its outputs were written from (with speaker options, `key:speakers:…`;
        # job keys are SHA-256 hex, 64 characters).
        "014_outputs_by_job",
        """
        ALTER TABLE outputs ADD COLUMN job TEXT;
        UPDATE outputs SET job = substr(job_key, 1, 64);
        CREATE INDEX outputs_job ON outputs(job);
        """,
    ),
)
