"""traceability: GS1 EPCIS 2.0 repository (issue 14); this package so far holds the event hash"""
