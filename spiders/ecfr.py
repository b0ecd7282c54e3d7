"""The spider for `kind: ecfr` sources: one CFR part through the eCFR versioner API.

A check first asks the cheap `versions/title-N.json?part=P`; only when it names an edition newer
than the one recorded (the source's cursor) is `full/{date}/title-N.xml?part=P` fetched. An
unchanged part costs one small JSON answer and is recorded as not modified.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from spiders.base import SourceRequest, SourceSpider
from tracker.check.ecfr import MalformedEcfr, latest_amendment

_VALIDATORS = ("etag", "last-modified")


def _where(src: SourceRequest) -> tuple[int, str]:
    query = src.options.get("query") or {}
    params = {"part": str(query.get("part", ""))}
    if query.get("section"):
        params["section"] = str(query["section"])
    return int(query.get("title", 0)), urlencode(params)


class EcfrSpider(SourceSpider):
    """Asks for new amendment dates, then for the part's text in force on the newest one."""

    name = "ecfr"

    def first_url(self, src: SourceRequest) -> str:
        title, params = _where(src)
        return f"{src.url.rstrip('/')}/api/versioner/v1/versions/title-{title}.json?{params}"

    def first_request(self, src: SourceRequest) -> scrapy.Request:
        # The versions list is small: asked unconditionally, its dates are the validator.
        src_plain = SourceRequest(**{**src.__dict__, "etag": None, "last_modified": None})
        return super().first_request(src_plain)

    def parse_source(self, response: Response) -> Any:
        src: SourceRequest = response.meta["source"]
        try:
            amendment = latest_amendment(response.body)
        except MalformedEcfr as exc:
            yield self.failed(response, f"{exc} from {response.url}")
            return
        if amendment is None:
            yield self.failed(response, f"{response.url} lists no versions: check the source's query "
                                        "(title and part)")
            return
        if amendment.issue_date == src.cursor:
            yield self.fetch_from(response, body=b"").not_modified_copy()
            return
        title, params = _where(src)
        url = f"{src.url.rstrip('/')}/api/versioner/v1/full/{amendment.issue_date}/title-{title}.xml?{params}"
        meta = {k: v for k, v in response.meta.items() if not k.startswith(("retry", "download_latency"))}
        meta["facts"] = {"cursor": amendment.issue_date, "effective_on": amendment.amendment_date,
                         "effective_from": f"the eCFR amendment date of the edition of {amendment.issue_date}"}
        yield scrapy.Request(url, meta=meta, callback=self.parse_full, errback=self.source_failed,
                             dont_filter=True)

    def parse_full(self, response: Response) -> Any:
        fetch = self.fetch_from(response, facts=response.meta["facts"])
        fetch.final_url = fetch.url
        # Validators of the XML are not the versions list's: never sent back to it.
        fetch.headers = {k: v for k, v in fetch.headers.items() if k.lower() not in _VALIDATORS}
        yield fetch
