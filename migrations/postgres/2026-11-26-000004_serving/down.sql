DROP TABLE feedback;
DROP TABLE predictions;
