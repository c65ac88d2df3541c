-- wrk script for the list target: `GET /api/v1/downloads?platform=…&per_page=50`
-- over the four platforms and pages 1–20, as the api_load bench does.
-- MEDIADL_TOKEN holds an access token (see benches/README.md).
local platforms = { "instagram", "tiktok", "forum", "direct" }
local token = os.getenv("MEDIADL_TOKEN")
local n = 0

request = function()
  n = n + 1
  local path = string.format(
    "/api/v1/downloads?platform=%s&per_page=50&page=%d",
    platforms[n % 4 + 1], n % 20 + 1)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

response = function(status)
  if status ~= 200 then
    error("unexpected status " .. status)
  end
end
