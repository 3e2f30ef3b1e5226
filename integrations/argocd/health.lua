-- Argo CD health check for every Outpost kind. Outpost objects report kstatus
-- conditions: Ready (the summary), Reconciling (work under way), Stalled (needs a spec
-- change); status.observedGeneration says which spec the status describes.
local hs = {}
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to process generation " .. obj.metadata.generation
  return hs
end
if status.phase == "Suspended" or status.phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = status.phase
  return hs
end
local ready, reconciling, stalled
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "Reconciling" then reconciling = c end
    if c.type == "Stalled" then stalled = c end
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
if ready ~= nil then
  if ready.status == "True" then
    hs.status = "Healthy"
  elseif ready.status == "False" then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
