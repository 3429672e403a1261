-- wrk script: every request is a full issuance (token verification, certificate signing,
-- audit record). TOKEN and KEY come from the environment. wrk itself reports any non-2xx
-- answers ("Non-2xx or 3xx responses"); run.sh also compares the server's issued counter.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"public_key": "' .. os.getenv("KEY") .. '", "ttl": 300, "context": {"task_id": "bench"}}'
