-- A binding added or removed by any replica or the CLI drops cached certificate principals.
CREATE TRIGGER certificate_bindings_changed AFTER INSERT OR UPDATE OR DELETE ON certificate_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
