"""Local fakes of platforms we do not own (Tencent Meeting, DingTalk), built from their documented shapes."""
