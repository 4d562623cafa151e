-- The archive: which companies exist (a platform read, through one function), and the index
-- that finds a company-day's rows.
-- depends: 0005.api

GRANT SELECT (id) ON companies TO controlroom_router;
CREATE POLICY platform_ids ON companies FOR SELECT TO controlroom_router USING (true);

CREATE FUNCTION archive_companies()
RETURNS TABLE (company_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.id FROM public.companies c ORDER BY 1
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION archive_companies() OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION archive_companies() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archive_companies() TO controlroom_app;
