// The recording module; its code arrives with the recording work (issue 5).
enum RecordingModule {}
