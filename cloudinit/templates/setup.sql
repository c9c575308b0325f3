-- ephemeros: the k3s role and its database. The role owns the database, so that kine can create its table
-- (PostgreSQL 15 lets no ordinary role create tables in public). The password is given as a SCRAM verifier.
\set ON_ERROR_STOP on
CREATE ROLE {{ D.ROLE }} LOGIN PASSWORD '{{ verifier }}';
CREATE DATABASE {{ D.DATABASE }} OWNER {{ D.ROLE }};
REVOKE ALL ON DATABASE {{ D.DATABASE }} FROM PUBLIC;
