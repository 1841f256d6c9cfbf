-- App passwords and API keys (/v1/me/app-passwords). An app password is stored sealed under
-- content.kek (token authentication needs the password itself); an API key only as its
-- SHA-256, unique. Tokens issued for a credential name it, so revoking it removes them.
CREATE TABLE app_credentials (
    account  TEXT COLLATE "C" NOT NULL,
    id       TEXT COLLATE "C" NOT NULL,
    key_hash BYTEA UNIQUE,
    record   JSONB NOT NULL,
    PRIMARY KEY (account, id)
);

CREATE INDEX tokens_by_credential ON tokens ((record->>'credential'))
    WHERE record ? 'credential';
