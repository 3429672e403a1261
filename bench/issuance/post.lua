-- wrk script: every request is a full issuance (token verification, ES256 + Ed25519 signing
-- of the certificate, audit record). TOKEN and KEY come from the environment.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"public_key": "' .. os.getenv("KEY") .. '", "ttl": 300, "context": {"task_id": "bench"}}'

local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

done = function(summary, latency, requests)
  for status, n in pairs(codes) do io.write(string.format("status %d: %d\n", status, n)) end
end
