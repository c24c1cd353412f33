"""GPU compute allocations: reserve GPU-seconds on a node, watch them being used, close early."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from backend.db import Allocation
from backend.deps import account_of, errors, principal, services
from backend.errors import Conflict, Invalid, NotFound, Unavailable
from backend.schemas import AllocateRequest, AllocationPage, AllocationView
from backend.security import Principal
from backend.services import Services

router = APIRouter(tags=["compute"])
AllocationId = Path(ge=1, le=2**64 - 1)


def choose_node(svc: Services, spec: AllocateRequest) -> str:
    """The caller's node, or the cheapest active node within the caller's price."""
    ceiling = int(spec.max_price_per_second_wei) if spec.max_price_per_second_wei else None
    nodes = svc.net.active_nodes(max_age=0)
    if not nodes:
        raise Unavailable("no node is active on the network", code="no_node_available")
    if spec.node is not None:
        nodes = [n for n in nodes if n["address"].lower() == spec.node.lower()]
        if not nodes:
            raise Invalid(f"node {spec.node} is not an active node", code="node_not_active")
    if ceiling is not None:
        nodes = [n for n in nodes if n["price_per_second"] <= ceiling]
        if not nodes:
            raise Conflict(f"no active node charges {ceiling} wei per second or less", code="no_node_within_price")
    return min(nodes, key=lambda n: (n["price_per_second"], n["address"]))["address"]


def allocation_view(svc: Services, row: Allocation) -> dict[str, Any]:
    (info,) = svc.net.views(("ComputeMarket", "getAllocation", (row.allocation_id,)))
    _, node, reserved, used, remaining, price, escrow, cost, expires, closed = info
    return {"allocation_id": row.allocation_id, "node": node, "reserved_seconds": reserved, "used_seconds": used,
            "remaining_seconds": remaining, "price_per_second_wei": str(price), "escrow_wei": str(escrow),
            "cost_so_far_wei": str(cost), "expires_at": expires, "closed": closed, "open_tx": row.open_tx,
            "close_tx": row.close_tx}


def _own(svc: Services, who: Principal, allocation_id: int) -> Allocation:
    with svc.db.session() as s:
        row = s.get(Allocation, allocation_id)
    if row is None or row.account_id != who.account_id:
        raise NotFound(f"no allocation {allocation_id}", code="allocation_not_found")
    return row


@router.post("/compute/allocate", status_code=201, response_model=AllocationView,
             responses=errors(401, 402, 409, 428, 502, 503, 504),
             summary="Reserve GPU-seconds on a node, paid from your deposit")
async def allocate(request: Request, body: AllocateRequest, who: Principal = Depends(principal)) -> JSONResponse:
    """Locks `gpu_seconds × price` from your deposit until `duration_s` from now. The node meters the GPU time
    of the jobs you run on it and is paid only for what it used; the rest comes back when the allocation
    closes (by you at any time, or by anyone after expiry)."""
    svc = services(request)

    def handler(key: str) -> tuple[int, dict[str, Any]]:
        node = choose_node(svc, body)
        account = account_of(svc, who)
        call = svc.net.calldata("ComputeMarket", "openAllocation", node, body.gpu_seconds, body.duration_s)
        _, events = svc.relay.submit(account, "ComputeMarket", call, action="open_allocation", key=key)
        allocation_id = next(e.args["allocationId"] for e in events if e.name == "AllocationOpened")
        return 201, allocation_view(svc, _own(svc, who, allocation_id))

    return await request.app.state.idempotency.run(request, svc, who, handler)


@router.get("/compute/allocations", response_model=AllocationPage, responses=errors(401),
            summary="Your allocations, newest first (at most 100)")
def list_allocations(request: Request, who: Principal = Depends(principal)) -> dict[str, Any]:
    svc = services(request)
    with svc.db.session() as s:
        rows = list(s.scalars(select(Allocation).filter_by(account_id=who.account_id)
                              .order_by(Allocation.allocation_id.desc()).limit(100)))
    return {"items": [allocation_view(svc, r) for r in rows]}


@router.get("/compute/allocations/{allocation_id}", response_model=AllocationView, responses=errors(401, 404),
            summary="Reserved, used and remaining seconds, cost so far and expiry")
def get_allocation(request: Request, allocation_id: int = AllocationId,
                   who: Principal = Depends(principal)) -> dict[str, Any]:
    svc = services(request)
    return allocation_view(svc, _own(svc, who, allocation_id))


@router.post("/compute/allocations/{allocation_id}/close", response_model=AllocationView,
             responses=errors(401, 404, 409, 428, 502, 504),
             summary="Close early: pay what was used, get the rest back")
async def close_allocation(request: Request, allocation_id: int = AllocationId,
                           who: Principal = Depends(principal)) -> JSONResponse:
    svc = services(request)

    def handler(key: str) -> tuple[int, dict[str, Any]]:
        row = _own(svc, who, allocation_id)
        account = account_of(svc, who)
        call = svc.net.calldata("ComputeMarket", "closeAllocation", allocation_id)
        svc.relay.submit(account, "ComputeMarket", call, action="close_allocation", key=key)
        return 200, allocation_view(svc, _own(svc, who, row.allocation_id))

    return await request.app.state.idempotency.run(request, svc, who, handler)
