"""Per-transaction paths of the institution interface, as regions publish them (reference §1.3).

Every transaction is also accepted on the single endpoint CALL_SERVICE, chosen by ``infno``.
"""

CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"

PATHS = {
    "9001": "/fsi/api/signInSignOutService/signIn",
    "1101": "/fsi/api/fsiPsnInfoService/queryPsnInfo",
    "2206": "/fsi/api/outpatientSettleService/preSettletment",
    "2207": "/fsi/api/outpatientSettleService/saveSettletmentV2",
    "2208": "/fsi/api/outpatientSettleService/cancleSettletment",
    "2303": "/fsi/api/hospSettService/preSett",
    "2304": "/fsi/api/hospSettService/settV2",
    "2305": "/fsi/api/hospSettService/settCl",
    "2601": "/fsi/api/reverseService/revsMethod",
    "3201": "/fsi/api/ybSettlementStmtService/stmtTotal",
    "3202": "/fsi/api/ybSettlementStmtService/stmtDetail",
    "9101": "/fsi/api/fileupload/upload",
    "9102": "/fsi/api/fileupload/download",
}
