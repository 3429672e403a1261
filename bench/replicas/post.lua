-- wrk script for bench/replicas: every request a full issuance with its own OIDC token (the
-- issuer has jti_replay: true, so a token is good once, on any replica). TOKENS names a file
-- of tokens, one a line (enough for the run; wrk reports any non-2xx answer); KEY is the
-- public key; NTHREADS is wrk's -t. Thread k sends tokens k, k+NTHREADS, k+2*NTHREADS, ...
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
  step = tonumber(os.getenv("NTHREADS"))
  next_token = id + 1
  body = '{"public_key": "' .. os.getenv("KEY") .. '", "ttl": 300}'
end

function request()
  local token = tokens[next_token]
  next_token = next_token + step
  if next_token > #tokens then next_token = id + 1 end
  return wrk.format("POST", "/v1/certificates",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
